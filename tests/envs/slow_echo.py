"""A tiny test environment whose tool sleeps, so a collection can be killed mid-run."""

import time

from agentkd import Environment, tool


@tool
def slow_echo(text: str) -> str:
    """Wait a little, then return the text."""
    time.sleep(0.15)
    return text


def solve(task):
    obs = yield f'Thought: echo it.\n```python\nprint(slow_echo("{task.answer}"))\n```'
    yield f'Thought: the echo said {obs.strip()}.\n```python\nfinal_answer("{obs.strip()}")\n```'


environment = Environment(
    name="slow_echo",
    tasks=[{"id": f"t{i}", "prompt": f"Echo {i}", "answer": str(i)} for i in range(60)],
    tools=[slow_echo],
    grader="exact",
    max_steps=4,
    reference_solver=solve,
)
