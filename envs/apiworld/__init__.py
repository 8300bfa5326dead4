"""apiworld: a miniature AppWorld. Contacts, calendar, payments and notes over a per-episode database.

Written with agentkd's public API exactly as a user would write an environment. Each task has
its own database, rebuilt from the task's seed at the start of every episode (`setup_state`).
Tasks need several API calls whose results must be read before acting. Grading compares the
final database with the initial one: the expected writes must all be there and nothing else may
have changed (an extra payment, note or deletion fails the task). The text answer is ignored.
"""

from __future__ import annotations

from typing import Any

from agentkd import Environment, Task

from .apps import TOOLS
from .db import DB
from .grading import check_writes
from .scenarios import SCENARIOS, build_episode
from .solver import reference_solver

INSTRUCTIONS = """You act for the user in their apps: contacts, calendar, payments and notes.
Look things up with the app functions and print what they return (e.g. json.dumps(result)) before acting.
Payments, new notes and deletions are real: make exactly the changes the task asks for and no others.
Dates are YYYY-MM-DD; calendar_today() gives today's date. When you are done, call final_answer with a short summary."""


def build_db(task: Task) -> DB:
    """The task's initial database (the same every time for the same task)."""
    return build_episode(task.metadata["db_seed"], task.metadata["template"])[0]


def grade(state: DB, task: Task) -> float:
    """1.0 if the final database holds exactly the expected writes, else 0.0."""
    if not isinstance(state, dict):
        return 0.0
    return 0.0 if check_writes(build_db(task), state, task.answer) else 1.0


def make_tasks(split: str, n: int, seed: int) -> list[dict[str, Any]]:
    """`n` tasks, templates interleaved; every task has its own database seed."""
    names = list(SCENARIOS)
    tasks = []
    for i in range(n):
        template, db_seed = names[i % len(names)], f"apiworld-{seed}-{split}-{i}"
        _, scenario = build_episode(db_seed, template)
        tasks.append({"id": f"{split}-{i:05d}", "prompt": scenario.prompt, "answer": scenario.expected, "split": split,
                      "metadata": {"template": template, "db_seed": db_seed, "plan": scenario.plan}})
    return tasks


def load_environment(seed: int = 0, tasks_per_split: int = 500) -> Environment:
    """The apiworld environment: `tasks_per_split` tasks in train and in test (built on first use)."""
    return Environment(
        name="apiworld",
        version=f"1-seed{seed}",
        instructions=INSTRUCTIONS,
        tasks=lambda split: make_tasks(split, tasks_per_split, seed),
        splits=["train", "test"],
        tools=TOOLS,
        grader=grade,
        max_steps=10,
        setup_state=build_db,
        reference_solver=reference_solver,
    )
