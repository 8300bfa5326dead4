import re

import pytest

from agentkd import BM25Retriever, DenseRetriever, Document, load_environment, tool

DOCS = [
    Document("1", "Zorvath Quellin", "Zorvath Quellin is a glassblower born in 1873 in Dunmere."),
    Document("2", "Dunmere", "Dunmere is a city in the region of Amberlee."),
    Document("3", "Veltrano Guild", "The Veltrano Guild is a shipbuilding organisation."),
]


def test_tool_prompt_comes_from_signature_and_docstring():
    @tool(name="lookup")
    def f(query: str, k: int = 3, exact: bool = False) -> list[str]:
        """Find entries matching the query."""
        return []

    assert f.name == "lookup"
    assert f.prompt() == (
        'def lookup(query: str, k: int = 3, exact: bool = False) -> list[str]:\n'
        '    """Find entries matching the query."""'
    )


def test_bm25_ranks_the_named_entity_first():
    retriever = BM25Retriever(DOCS)
    hits = retriever.search("Where was Zorvath Quellin born?", k=2)
    assert [h.document.id for h in hits] == ["1"]  # documents sharing no term are not returned
    hits = retriever.search("Dunmere", k=3)
    assert [h.document.id for h in hits] == ["2", "1"] and hits[0].score > hits[1].score


@pytest.mark.slow
def test_dense_retriever_with_packaged_minilm_has_the_same_interface():
    retriever = DenseRetriever(DOCS)
    hits = retriever.search("a company that builds ships", k=2)
    assert hits[0].document.id == "3"
    assert len(hits) == 2 and hits[0].score >= hits[1].score


def test_factqa_is_deterministic_large_and_has_disjoint_splits(factqa):
    again = load_environment("factqa")
    assert [t.model_dump() for t in factqa.tasks("test", 50)] == [t.model_dump() for t in again.tasks("test", 50)]
    train, test = factqa.tasks("train"), factqa.tasks("test")
    assert len(train) >= 1000 and len(test) >= 1000
    names = lambda tasks: {n for t in tasks for n in re.findall(r"[A-Z][a-z]+ [A-Z][a-z]+", t.prompt)}  # noqa: E731
    assert not names(train) & names(test)
    kinds = {t.metadata["kind"] for t in train[:3]}
    assert kinds == {"single", "bridge", "comparison"}


def test_factqa_seed_changes_the_world():
    other = load_environment("factqa", seed=1, tasks_per_split=10)
    assert other.tasks("train")[0].prompt != load_environment("factqa").tasks("train")[0].prompt


def test_factqa_search_tool_and_grader(factqa):
    task = factqa.tasks("test")[1]  # a bridge question
    entity = task.metadata["plan"]["entity"]
    assert entity in factqa.tools["search"](entity)
    assert factqa.grade(task.answer.upper() + ".", task).success
    assert not factqa.grade("something else", task).success
