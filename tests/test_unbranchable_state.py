"""States that cannot be copied (issue 11): an episode state holding a live subprocess and a lock.

Self-consistent generation and result agreement run candidates against a branch of the state. With
no declaration the deep copy fails, with branchable=False there is none, with fork_state the
environment makes one: in every case the evaluation finishes, a fallback says so on the vote, the
episode never sees a trial's side effects, and teardown_state closes every state however it ends.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from typing import Any

import pytest

from agentkd import CodeActAgent, Environment, ReferencePolicy, Usage, tool
from agentkd.agent.env_check import check_environment
from agentkd.errors import StateNotBranchableError
from agentkd.models.client import Completion
from agentkd.policies.cascade import CascadePolicy
from agentkd.policies.self_consistent import SelfConsistentPolicy


class Console:
    """A live process (`cat`) behind a lock: what a game bridge, a database session or a browser looks like."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.log = list(log or [])
        OPENED.append(self)

    def send(self, text: str) -> str:
        with self.lock:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
            self.log.append(text)
            return self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        CLOSED.append(self)


OPENED: list[Console] = []
CLOSED: list[Console] = []


@pytest.fixture(autouse=True)
def fresh_counts():
    OPENED.clear()
    CLOSED.clear()


@tool
def send(text: str, state: Console) -> str:
    """Send a line to the console and return its echo."""
    return state.send(text)


def grade(state: Console, task: Any) -> float:
    """Exactly one line sent, by the episode itself: a trial's sends must not show up here."""
    return float(state.log == ["hi"])


def make_env(**declared: Any) -> Environment:
    return Environment(name="console", tasks=[{"id": "c1", "prompt": "say hi", "answer": "hi"}], tools=[send],
                       grader=grade, setup_state=lambda task: Console(), teardown_state=Console.close,
                       max_steps=3, **declared)


SAY = "Thought: say it.\n```python\nr = send('hi')\nprint(r)\n```"
SAY_SPACED = "Thought: say it again.\n```python\nr = send( 'hi' )  # same code\nprint(r)\n```"
DONE = "Thought: done.\n```python\nfinal_answer(r)\n```"


class ScriptedStudent:
    """Stands in for the student's sampler (a test double for the model; the sandbox and states are real)."""

    role = "student"

    def __init__(self, per_step: list[list[str]]) -> None:
        self.per_step = per_step
        self.client = type("C", (), {"model": "scripted"})()
        self.store = None

    async def sample(self, ctx: Any, n: int, temperature: float) -> Completion:
        texts = self.per_step[min(ctx.step_index, len(self.per_step) - 1)][:n]
        return Completion(texts=texts, usage=Usage(calls=1), latency_s=0.0, model="scripted")


def policies() -> dict[str, Any]:
    student = ScriptedStudent([[SAY, SAY_SPACED, SAY], [DONE] * 3])
    return {"sc": SelfConsistentPolicy(student, samples=3),
            "cascade-result": CascadePolicy(student, ReferencePolicy(), samples=3, agreement="result")}


@pytest.mark.parametrize("policy", ["sc", "cascade-result"])
@pytest.mark.parametrize("declared", [{}, {"branchable": False}], ids=["undeclared", "branchable=False"])
def test_unbranchable_state_falls_back_to_code_agreement_with_a_warning(policy, declared):
    env = make_env(**declared)
    traj = CodeActAgent(env, policies()[policy]).run(env.tasks("train")[0])
    assert traj.status == "finished" and traj.success, (traj.status, traj.error)
    vote = traj.steps[0].vote
    assert vote.mode == "code" and vote.accepted
    assert vote.warning.startswith("result agreement fell back to code agreement")
    assert "console" in vote.warning and "Console" in vote.warning  # names the environment and the state
    assert ("branchable=False" in vote.warning) if declared else ("cannot be deep-copied" in vote.warning)
    assert "\n" not in vote.warning
    assert len(CLOSED) == 1 and CLOSED[0].proc.returncode is not None  # the episode's state was torn down


@pytest.mark.parametrize("policy", ["sc", "cascade-result"])
def test_fork_state_branches_for_trials_that_leave_the_episode_untouched(policy):
    env = make_env(fork_state=lambda state: Console(state.log))
    traj = CodeActAgent(env, policies()[policy]).run(env.tasks("train")[0])
    assert traj.status == "finished" and traj.success  # the grader saw only the episode's own send
    assert traj.steps[0].vote.mode == "result" and traj.steps[0].vote.warning is None
    assert traj.steps[0].role == "student"
    # every branch (3 candidates x 2 steps) and the episode's state were closed
    assert len(CLOSED) == 7 and all(c.proc.returncode is not None for c in CLOSED)


def test_branch_state_says_what_to_declare():
    env = make_env()
    state = env.new_state(env.tasks("train")[0])
    try:
        with pytest.raises(StateNotBranchableError, match="fork_state=.*branchable=False"):
            env.branch_state(state)
        same = make_env(fork_state=lambda s: s)
        with pytest.raises(StateNotBranchableError, match="returned the state itself"):
            same.branch_state(state)
    finally:
        env.end_state(state)
    with pytest.raises(Exception, match="contradict"):
        make_env(fork_state=lambda s: s, branchable=False)


@pytest.mark.parametrize("declared, ok, detail", [
    ({}, False, "cannot be deep-copied"),
    ({"branchable": False}, True, "declared not branchable"),
    ({"fork_state": lambda state: Console(state.log)}, True, "branches with fork_state"),
])
def test_check_env_tries_to_branch_the_state(declared, ok, detail):
    report = check_environment(make_env(**declared), n=1)
    state_check = next(c for c in report.checks if c.name == "state")
    assert state_check.ok is ok and detail in state_check.detail, state_check
    assert report.ok is ok
    assert len(OPENED) >= 3 and sorted(map(id, CLOSED)) == sorted(map(id, OPENED))  # every state it built, closed


def test_teardown_runs_when_an_episode_errors_or_is_cancelled():
    env = make_env(branchable=False)

    class Broken:
        name = "broken"

        async def act(self, ctx: Any) -> Any:
            raise RuntimeError("policy bug")

    class Slow:
        name = "slow"

        async def act(self, ctx: Any) -> Any:
            await asyncio.sleep(60)

    traj = CodeActAgent(env, Broken()).run(env.tasks("train")[0])
    assert traj.status == "error" and len(CLOSED) == 1

    async def cancel_midway() -> None:
        episode = asyncio.ensure_future(CodeActAgent(env, Slow()).arun(env.tasks("train")[0]))
        await asyncio.sleep(0.3)
        episode.cancel()
        with pytest.raises(asyncio.CancelledError):
            await episode

    asyncio.run(cancel_midway())
    assert len(CLOSED) == 2 and CLOSED[1].proc.returncode is not None
