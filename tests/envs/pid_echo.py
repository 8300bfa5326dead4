"""A test environment whose tool reports the process that runs it: the host of the episode's sandbox
(a Ray worker under --backend ray), so a test can see which worker ran which episode."""

import os
import time

from agentkd import Environment, tool


@tool
def host_pid() -> int:
    """The process id of the process running this episode's tools (after a short wait)."""
    time.sleep(0.1)
    return os.getpid()


def solve(task):
    obs = yield 'Thought: which process hosts me?\n```python\nprint(host_pid())\n```'
    yield f'Thought: host {obs.strip()}.\n```python\nfinal_answer("{task.answer}")\n```'


environment = Environment(
    name="pid_echo",
    tasks=[{"id": f"p{i}", "prompt": f"Say {i}", "answer": str(i)} for i in range(60)],
    tools=[host_pid],
    grader="exact",
    max_steps=4,
    reference_solver=solve,
)
