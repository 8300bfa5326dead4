"""mathcode: multi-step word problems whose numbers defeat mental arithmetic (GSM-hard style).

Written with agentkd's public API exactly as a user would write an environment. Problems come
from seven templates (inventory, travel, compound interest, fuel delivery, bill splitting, trip
fuel cost, payroll), with exact answers computed with Fractions. The only tool is the Python
worker itself. Train and test come from different seeded streams and share no prompt.
"""

from __future__ import annotations

import re
from typing import Any, Generator

from agentkd import Environment, Task, numeric_match

from .problems import make_tasks
from .templates import TEMPLATES

INSTRUCTIONS = """You solve word problems with awkward numbers. Do not do arithmetic in your head:
compute every step in Python and print intermediate results.
Answer with the number only (no units); you may round money to the cent."""

REL_TOL = 1e-4
_LONG_DECIMAL = re.compile(r"\d+\.\d{5,}")


def grade(answer: Any, target: Any) -> float:
    """1.0 if the answer's first number is within a relative 1e-4 of the exact result."""
    return numeric_match(answer, target, rel_tol=REL_TOL, abs_tol=0.0)


def _last_line(observation: str) -> str:
    """The last printed line, long decimals rounded to the cent as a person would quote them."""
    lines = observation.strip().splitlines()
    line = lines[-1] if lines else observation
    return _LONG_DECIMAL.sub(lambda m: f"{float(m.group(0)):.2f}", line)


def reference_solver(task: Task) -> Generator[str, str, None]:
    """Write the computation step by step, print each intermediate value, answer with the last variable."""
    template = TEMPLATES[task.metadata["template"]]
    observation = ""
    for thought, code in template.steps(task.metadata["values"]):
        thought = thought.replace("{obs}", _last_line(observation))
        observation = yield f"Thought: {thought}\n```python\n{code}\n```"


def load_environment(seed: int = 0, tasks_per_split: int = 1000) -> Environment:
    """The mathcode environment: `tasks_per_split` problems in train and in test."""
    train = make_tasks("train", tasks_per_split, seed)
    test = make_tasks("test", tasks_per_split, seed, exclude={t["prompt"] for t in train})
    return Environment(
        name="mathcode",
        version=f"1-seed{seed}",
        instructions=INSTRUCTIONS,
        tasks={"train": train, "test": test},
        tools=[],
        grader=grade,
        max_steps=6,
        reference_solver=reference_solver,
    )
