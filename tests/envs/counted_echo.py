"""A test environment built by a function with keyword arguments; every build is logged to a file, so a
test can tell whether (and with what) the environment was loaded."""

import json
import os

from agentkd import Environment, tool


@tool
def echo(text: str) -> str:
    """Return the text."""
    return text


def solve(task):
    yield f'Thought: it is given.\n```python\nfinal_answer({task.answer!r})\n```'


def load_environment(n_tasks: int = 4, prefix: str = "t") -> Environment:
    log = os.environ.get("COUNTED_ECHO_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(json.dumps({"n_tasks": n_tasks, "prefix": prefix}) + "\n")
    return Environment(
        name="counted_echo",
        tasks=[{"id": f"{prefix}{i}", "prompt": f"Say {i}", "answer": str(i)} for i in range(n_tasks)],
        tools=[echo],
        grader="exact",
        max_steps=2,
        reference_solver=solve,
    )
