"""factqa: multi-hop QA over a generated encyclopedia of fictional entities.

Written with agentkd's public API exactly as a user would write an environment.
Kinds: single-hop, bridge (2-hop), comparison. Train and test use disjoint entities.
"""

from __future__ import annotations

from typing import Generator

from agentkd import BM25Retriever, DenseRetriever, Document, Environment, Task, format_hits, tool

from .questions import make_tasks
from .world import build_worlds

INSTRUCTIONS = """You answer questions about a private encyclopedia of people, cities and organisations.
Facts are not common knowledge: look them up with search() and read the results.
Answer with just the name, year or number asked for."""

# What a careful teacher says it is looking for, per question template.
LOOKING_FOR = {
    "born": "the birth year of {e}",
    "occupation": "the occupation of {e}",
    "headquarters": "where the headquarters of the {e} are",
    "place_founded": "the founding year of {e}",
    "employer_founded": "the organisation {e} works for, then its founding year",
    "employer_hq": "the organisation that employs {e}, then its headquarters",
    "birthplace_region": "the birthplace of {e}, then its region",
    "employer_founder": "the organisation {e} works for, then its founder",
}


def _search_step(query: str, why: str) -> str:
    return f'Thought: {why}\n```python\nresults = search("{query}")\nprint(results)\n```'


def reference_solver(task: Task) -> Generator[str, str, None]:
    """Search for each entity the question needs, check the fact is in the results, answer."""
    plan = task.metadata["plan"]
    template = plan["template"]
    if "entities" in plan:  # comparison
        a, b = plan["entities"]
        values = []
        for name in (a, b):
            fact = plan["facts"][len(values)]
            obs = yield _search_step(name, f"I need the year for {name}. Let me search for it.")
            if fact not in obs:
                obs = yield _search_step(f"{name} founded born", "The year was not in these results. I will search again.")
            values.append(fact)
        yield (
            f"Thought: {a} has {values[0]} and {b} has {values[1]}; the earlier year wins.\n"
            f'```python\nyears = {{"{a}": {values[0]}, "{b}": {values[1]}}}\n'
            f"final_answer(min(years, key=years.get))\n```"
        )
        return
    entity, fact = plan["entity"], plan["fact"]
    obs = yield _search_step(entity, f"I need {LOOKING_FOR[template].format(e=entity)}. Let me search for {entity}.")
    if "bridge" in plan:
        bridge = plan["bridge"]
        if bridge not in obs:
            obs = yield _search_step(f"{entity} {bridge.split()[0]}", f"{entity} was not in the results. I will search again.")
        obs = yield _search_step(bridge, f"The results say {entity} is linked to {bridge}. Now I search for {bridge}.")
    if fact not in obs:
        obs = yield _search_step(f"{entity} {fact}", "The fact was not in these results. I will search again.")
    yield f'Thought: The encyclopedia says the answer is {fact}.\n```python\nfinal_answer("{fact}")\n```'


def load_environment(seed: int = 0, tasks_per_split: int = 2000, retriever: str = "bm25") -> Environment:
    """The factqa environment. `retriever`: 'bm25' (default) or 'dense' (FAISS + packaged MiniLM)."""
    worlds = build_worlds(seed, {"train": (400, 80, 60), "test": (300, 60, 45)})
    documents = [
        Document(id=f"{split}-{i}", title=title, text=text)
        for split, world in worlds.items()
        for i, (title, text) in enumerate(world.documents())
    ]
    index = DenseRetriever(documents) if retriever == "dense" else BM25Retriever(documents)

    @tool
    def search(query: str, k: int = 3) -> str:
        """Search the encyclopedia. Returns the k best matching entries as text, one per line."""
        return format_hits(index.search(query, k=max(1, min(int(k), 10))))

    tasks = {split: make_tasks(world, split, tasks_per_split, seed) for split, world in worlds.items()}
    return Environment(
        name="factqa",
        version=f"1-seed{seed}",
        instructions=INSTRUCTIONS,
        tasks=tasks,
        tools=[search],
        grader="normalized",
        max_steps=8,
        reference_solver=reference_solver,
    )
