import json
import textwrap

import pytest

from agentkd import (
    CodeActAgent,
    Environment,
    EnvironmentDefinitionError,
    EnvironmentLoadError,
    ReferencePolicy,
    ToolDefinitionError,
    UnknownSplitError,
    load_environment,
    tool,
)

# The README promises a retrieval-QA environment in about 30 lines; this is it, executed here.
RETRIEVAL_ENV = '''
from agentkd import BM25Retriever, Document, Environment, format_hits, tool

DOCS = [
    Document("1", "Zorvath Quellin", "Zorvath Quellin is a glassblower born in 1873."),
    Document("2", "Miren Aldou", "Miren Aldou is a linguist born in 1902."),
]
index = BM25Retriever(DOCS)


@tool
def search(query: str, k: int = 2) -> str:
    """Search the notes. Returns the best matching entries."""
    return format_hits(index.search(query, k))


def solve(task):
    obs = yield f'Thought: look up.\\n```python\\nprint(search("{task.metadata["who"]}"))\\n```'
    year = obs.split("born in ")[1][:4]
    yield f'Thought: found {year}.\\n```python\\nfinal_answer("{year}")\\n```'


environment = Environment(
    name="notes-qa",
    instructions="Answer with a year.",
    tasks={
        "train": [{"id": "a", "prompt": "When was Zorvath Quellin born?", "answer": "1873", "metadata": {"who": "Zorvath Quellin"}}],
        "test": [{"id": "b", "prompt": "When was Miren Aldou born?", "answer": "1902", "metadata": {"who": "Miren Aldou"}}],
    },
    tools=[search],
    grader="normalized",
    max_steps=4,
    reference_solver=solve,
)
'''


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_retrieval_env_in_about_30_lines_loads_and_solves(tmp_path):
    assert len(RETRIEVAL_ENV.strip().splitlines()) <= 40
    path = write(tmp_path, "notes_env.py", RETRIEVAL_ENV)
    env = load_environment(str(path))
    assert env.splits == ["train", "test"]
    traj = CodeActAgent(env, ReferencePolicy()).run(env.tasks("test")[0])
    assert traj.success and traj.final_answer == "1902"
    assert "def search(query: str, k: int = 2) -> str" in traj.messages[0]["content"]


def test_load_by_path_attr_and_module_attr(tmp_path, monkeypatch):
    path = write(tmp_path, "notes_env2.py", RETRIEVAL_ENV + "\ndef make(**kw):\n    return environment\n")
    assert load_environment(f"{path}:make").name == "notes-qa"
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_environment("notes_env2:environment").name == "notes-qa"


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(EnvironmentLoadError, match="does not exist"):
        load_environment(str(tmp_path / "missing.py"))
    with pytest.raises(EnvironmentLoadError, match="cannot find environment"):
        load_environment("no_such_module_xyz")
    path = write(tmp_path, "empty_env.py", "x = 1\n")
    with pytest.raises(EnvironmentLoadError, match="defines no"):
        load_environment(str(path))
    path = write(tmp_path, "wrong_env.py", "environment = 42\n")
    with pytest.raises(EnvironmentLoadError, match="not an agentkd Environment"):
        load_environment(str(path))


def test_definition_error_surfaces_at_load_time(tmp_path):
    path = write(tmp_path, "bad_env.py", """
        from agentkd import Environment
        environment = Environment(name="bad", tasks=[{"id": "a", "prompt": "p"}], grader=None)
    """)
    with pytest.raises(EnvironmentDefinitionError, match="no grader"):
        load_environment(str(path))


def tasks():
    return [{"id": "a", "prompt": "p", "answer": "1"}]


def test_missing_grader_and_unknown_grader():
    with pytest.raises(EnvironmentDefinitionError, match="no grader"):
        Environment(name="e", tasks=tasks(), grader=None)
    with pytest.raises(EnvironmentDefinitionError, match="unknown grader 'fuzzy'"):
        Environment(name="e", tasks=tasks(), grader="fuzzy")
    with pytest.raises(EnvironmentDefinitionError, match="may only take"):
        Environment(name="e", tasks=tasks(), grader=lambda answer, gold: 1.0)


def test_tool_without_type_hints_or_docstring_is_refused():
    def no_doc(x: str) -> str:
        return x

    def no_hint(x) -> str:
        """Doc."""
        return x

    def no_return(x: str):
        """Doc."""
        return x

    with pytest.raises(ToolDefinitionError, match="no docstring"):
        tool(no_doc)
    with pytest.raises(ToolDefinitionError, match="'x' has no type hint"):
        tool(no_hint)
    with pytest.raises(ToolDefinitionError, match="no return type hint"):
        tool(no_return)


def test_duplicate_task_ids_and_unknown_split():
    with pytest.raises(EnvironmentDefinitionError, match="duplicate task ids \\['a'\\]"):
        Environment(name="e", tasks=tasks() * 2, grader="exact")
    env = Environment(name="e", tasks=tasks(), grader="exact")
    with pytest.raises(UnknownSplitError, match="unknown split 'dev'"):
        env.tasks("dev")


def test_split_slices_select_a_dev_slice_that_collection_never_reaches():
    env = Environment(name="e", tasks=[{"id": f"t{i}", "prompt": f"q{i}", "answer": i, "split": "train"}
                                       for i in range(10)], grader="exact")
    assert [t.id for t in env.tasks("train[6:9]")] == ["t6", "t7", "t8"]
    assert [t.id for t in env.tasks("train[8:]")] == ["t8", "t9"]
    assert [t.id for t in env.tasks("train[:2]", n=1)] == ["t0"]
    assert {t.split for t in env.tasks("train[6:9]")} == {"train"}
    with pytest.raises(UnknownSplitError, match="unknown split 'dev'"):
        env.tasks("dev[0:2]")
    with pytest.raises(UnknownSplitError, match=r"'train\[10:20\]' holds no tasks: train has 10 \(tasks 0 to 9\)"):
        env.tasks("train[10:20]")


def test_tool_name_clash_state_without_setup_and_bad_solver():
    @tool
    def final_answer(x: str) -> str:
        """Clash."""
        return x

    @tool
    def counter(state: dict) -> int:
        """Count."""
        return 1

    with pytest.raises(EnvironmentDefinitionError, match="reserved"):
        Environment(name="e", tasks=tasks(), grader="exact", tools=[final_answer])
    with pytest.raises(EnvironmentDefinitionError, match="no setup_state"):
        Environment(name="e", tasks=tasks(), grader="exact", tools=[counter])
    with pytest.raises(EnvironmentDefinitionError, match="generator function"):
        Environment(name="e", tasks=tasks(), grader="exact", reference_solver=lambda task: "x")


def test_tasks_from_jsonl_file_and_generator(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"t{i}", "question": f"q{i}", "answer": i, "split": s})
                              for i, s in enumerate(["train", "train", "test"])) + "\n")
    env = Environment(name="e", tasks=path, grader="numeric")
    assert [t.id for t in env.tasks("train")] == ["t0", "t1"]
    assert env.tasks("test")[0].prompt == "q2"

    def gen(split):
        for i in range(3):
            yield {"id": f"{split}{i}", "prompt": "p", "answer": i}

    env = Environment(name="g", tasks=gen, splits=["train", "test"], grader="numeric")
    assert [t.id for t in env.tasks("test", 2)] == ["test0", "test1"]
    with pytest.raises(EnvironmentDefinitionError, match="list of splits"):
        Environment(name="g", tasks=gen, grader="numeric")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prompt": "p"}\n{not json\n')
    with pytest.raises(EnvironmentDefinitionError, match="bad.jsonl:2"):
        Environment(name="e", tasks=bad, grader="exact")


@pytest.mark.parametrize(
    "grader,answer,target,expected",
    [
        ("exact", "Paris", "Paris", 1.0),
        ("exact", "paris", "Paris", 0.0),
        ("normalized", "The  Paris!", "paris", 1.0),
        ("normalized", "48,210", "48210", 1.0),
        ("f1", "new york city", "new york", 0.8),
        ("numeric", "about 3.0000001 m", 3, 1.0),
        ("numeric", "1,204.5", "1204.5", 1.0),
        ("numeric", "7", "8", 0.0),
        ("exact", "b", ["a", "b"], 1.0),
    ],
)
def test_builtin_graders(grader, answer, target, expected):
    env = Environment(name="e", tasks=[{"id": "a", "prompt": "p", "answer": target}], grader=grader)
    assert env.grade(answer, env.tasks("train")[0]).score == pytest.approx(expected, abs=1e-6)


def test_callable_grader_gets_only_what_it_asks_for_and_state_is_per_episode():
    seen = []

    @tool
    def add(item: str, state: list) -> int:
        """Add an item to the episode's list; returns the list length."""
        state.append(item)
        return len(state)

    def grader(state, target):
        seen.append(list(state))
        return float(state == [target])

    def solve(task):
        yield 'Thought: add.\n```python\nprint(add("x"))\n```'
        yield 'Thought: done.\n```python\nfinal_answer(None)\n```'

    env = Environment(name="s", tasks=[{"id": "a", "prompt": "p", "answer": "x"}, {"id": "b", "prompt": "p", "answer": "y"}],
                      tools=[add], grader=grader, setup_state=lambda task: [], reference_solver=solve)
    assert "state" not in env.tools["add"].signature
    agent = CodeActAgent(env, ReferencePolicy())
    first, second = (agent.run(t) for t in env.tasks("train"))
    assert first.success and not second.success
    assert seen == [["x"], ["x"]]  # a fresh state per episode
    assert first.steps[0].observation == "1"
