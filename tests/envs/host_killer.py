"""A test environment whose tool kills the process hosting it on one task (a worker that dies every time
it runs that episode, as with a crashing native library), and works on the others."""

import os
import signal

from agentkd import Environment, tool


@tool
def work(n: int) -> str:
    """Do the work for task n (task 1 kills the host process)."""
    if n == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return str(n)


def solve(task):
    obs = yield f'Thought: work.\n```python\nprint(work({task.answer}))\n```'
    yield f'Thought: done.\n```python\nfinal_answer("{obs.strip()}")\n```'


environment = Environment(
    name="host_killer",
    tasks=[{"id": f"k{i}", "prompt": f"Work {i}", "answer": str(i)} for i in range(4)],
    tools=[work],
    grader="exact",
    max_steps=3,
    reference_solver=solve,
)
