"""`agentkd check-env`: load an environment, validate its parts, and run its grader both ways.

Checks, in order: it loads; every split has tasks; task ids are unique (across splits too) and
prompts non-empty; tools are described; the grader is callable and scores in [0, 1]; per-episode
state is fresh and can be branched for trial runs (or is declared branchable=False); the reference solver (if any) solves a sample of each split; and a deliberately
wrong policy (answers "agentkd-wrong-answer" at once, writing nothing) is rejected by the grader.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from agentkd.env.environment import Environment
from agentkd.errors import StateNotBranchableError
from agentkd.policies.base import PolicyContext, PolicyOutput
from agentkd.records import Task, Trajectory
from agentkd.specs import EnvSpec
from agentkd.tools.sandbox import SandboxConfig

WRONG_ANSWER = "agentkd-wrong-answer"


@dataclass
class Check:
    """One check: what was checked, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class CheckReport:
    """The outcome of `check_environment`; `ok` when every check passed."""

    spec: str
    checks: list[Check] = field(default_factory=list)
    environment: Environment | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def loaded(self) -> bool:
        return self.environment is not None

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str = "") -> Check:
        check = Check(name, ok, detail)
        self.checks.append(check)
        return check


class WrongAnswerPolicy:
    """Answers a fixed wrong answer at once and calls no tool: the grader must reject it."""

    name = "check-env:wrong-answer"

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        text = f'Thought: I answer without looking.\n```python\nfinal_answer("{WRONG_ANSWER}")\n```'
        return PolicyOutput(text=text, role="system", model="check-env")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _run(check: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
    """A check's (ok, detail); an exception fails the check with its message."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a broken environment is a finding, not a crash
        return False, f"{type(exc).__name__}: {exc}"


def _check_splits(env: Environment, tasks: dict[str, list[Task]]) -> tuple[bool, str]:
    if not env.splits:
        return False, "no splits declared"
    for split in env.splits:
        tasks[split] = env.tasks(split)
    empty = [s for s, ts in tasks.items() if not ts]
    counts = ", ".join(f"{s}: {len(ts)}" for s, ts in tasks.items())
    return (False, f"empty splits {empty} ({counts})") if empty else (True, counts)


def _check_ids(tasks: dict[str, list[Task]]) -> tuple[bool, str]:
    seen: dict[str, str] = {}
    clashes = []
    for split, items in tasks.items():
        for task in items:
            if task.id in seen:
                clashes.append(f"{task.id!r} ({seen[task.id]}, {split})")
            seen[task.id] = split
    blank = [t.id for ts in tasks.values() for t in ts if not t.prompt.strip()]
    if clashes:
        return False, f"task ids used twice: {', '.join(clashes[:5])}; every id must be unique across splits"
    if blank:
        return False, f"tasks with an empty prompt: {blank[:5]}"
    return True, f"{len(seen)} unique ids, every prompt non-empty"


def _check_tools(env: Environment) -> tuple[bool, str]:
    if not env.tools:
        return True, "no tools (the Python worker only)"
    undescribed = [name for name, t in env.tools.items() if not t.description.strip()]
    if undescribed:
        return False, f"tools without a description: {undescribed}"
    return True, f"{len(env.tools)} described: {', '.join(env.tools)}"


def _check_grader(env: Environment, task: Task) -> tuple[bool, str]:
    grade = getattr(env, "_grade", None)
    if not callable(grade):
        return False, "the grader is not callable"
    state = env.new_state(task)
    try:
        score = env.grade(task.answer, task, state).score
    finally:
        env.end_state(state)
    if not 0.0 <= score <= 1.0:
        return False, f"scored {score} for task {task.id!r}; a grader must return a score in [0, 1]"
    return True, f"callable; scores {score:g} on task {task.id!r} with its own target as the answer"


def _check_state(env: Environment, task: Task) -> tuple[bool, str]:
    if env.setup_state is None:
        return True, "stateless"
    first, second = env.new_state(task), env.new_state(task)
    try:
        if first is None:
            return False, f"setup_state returned None for task {task.id!r}"
        if first is second:
            return False, "setup_state returned the same object twice; every episode needs a fresh state"
        same = "deterministic" if repr(first) == repr(second) else "differs between builds"
        ok, branching = _check_branching(env, first)
        return ok, f"fresh {type(first).__name__} per episode ({same}); {branching}"
    finally:
        env.end_state(first)
        if second is not first:
            env.end_state(second)


def _check_branching(env: Environment, state: Any) -> tuple[bool, str]:
    """Try to branch the state as self-consistent generation and result agreement do."""
    if not env.branchable:
        return True, "declared not branchable (sc and result agreement vote on code instead)"
    try:
        branch = env.branch_state(state)
    except StateNotBranchableError as exc:
        return False, str(exc)
    env.end_state(branch)
    return True, f"branches with {'fork_state' if env.fork_state else 'a deep copy'}"


def _describe_failure(traj: Trajectory) -> str:
    if traj.status != "finished":
        why = traj.error or f"no final_answer within {len(traj.steps)} steps"
        return f"{traj.task.id}: {traj.status} ({why})"
    return f"{traj.task.id}: the grader rejected the answer {_short(traj.final_answer, 60)} (score {traj.score:g})"


def sample_tasks(tasks: list[Task], n: int) -> list[Task]:
    """Up to `n` tasks spread over the split (a fixed sample, in split order)."""
    if len(tasks) <= n:
        return list(tasks)
    return [tasks[i] for i in sorted(random.Random(0).sample(range(len(tasks)), n))]


async def _episodes(env: Environment, policy: Any, tasks: list[Task], sandbox: SandboxConfig | None,
                    concurrency: int = 4) -> list[Trajectory]:
    from agentkd.agent.loop import CodeActAgent

    agent = CodeActAgent(env, policy, sandbox=sandbox)
    gate = asyncio.Semaphore(concurrency)

    async def one(task: Task) -> Trajectory:
        async with gate:
            return await agent.arun(task)

    return list(await asyncio.gather(*(one(t) for t in tasks)))


async def acheck_environment(env_or_spec: Environment | EnvSpec | str, n: int = 5,
                             sandbox: SandboxConfig | None = None) -> CheckReport:
    """`check_environment` for async code."""
    from agentkd.env.loading import load_environment
    from agentkd.policies.reference import ReferencePolicy

    report = CheckReport(spec=env_or_spec.name if isinstance(env_or_spec, Environment) else str(env_or_spec))
    try:
        env = load_environment(env_or_spec)
    except Exception as exc:  # noqa: BLE001 - report every way loading can fail
        report.add("loads", False, f"{type(exc).__name__}: {exc}")
        return report
    report.environment = env
    report.add("loads", True, f"{env.name}@{env.version}, max {env.max_steps} steps")

    tasks: dict[str, list[Task]] = {}
    report.add("splits", *_run(lambda: _check_splits(env, tasks)))
    if not report.ok:
        return report
    first = next(iter(tasks.values()))[0]
    report.add("task ids", *_run(lambda: _check_ids(tasks)))
    report.add("tools", *_run(lambda: _check_tools(env)))
    report.add("grader", *_run(lambda: _check_grader(env, first)))
    report.add("state", *_run(lambda: _check_state(env, first)))
    if not report.ok:
        return report

    if env.reference_solver is None:
        report.add("reference solver", True, "none declared (skipped)")
    else:
        for split, items in tasks.items():
            try:
                trajs = await _episodes(env, ReferencePolicy(), sample_tasks(items, n), sandbox)
            except Exception as exc:  # noqa: BLE001 - e.g. a grader that raises
                report.add(f"reference solver ({split})", False, f"{type(exc).__name__}: {exc}")
                continue
            failures = [_describe_failure(t) for t in trajs if not t.success]
            detail = f"solved {len(trajs) - len(failures)}/{len(trajs)}"
            if failures:
                detail += "; failed: " + "; ".join(failures[:3]) + (" ..." if len(failures) > 3 else "")
            report.add(f"reference solver ({split})", not failures, detail)

    try:
        (wrong,) = await _episodes(env, WrongAnswerPolicy(), [first], sandbox)
    except Exception as exc:  # noqa: BLE001 - e.g. a grader that raises on a wrong answer
        report.add("rejects a wrong answer", False, f"grading a wrong answer raised {type(exc).__name__}: {exc}")
        return report
    if wrong.status != "finished":
        report.add("rejects a wrong answer", False, f"the episode did not finish: {_describe_failure(wrong)}")
    elif wrong.success:
        report.add("rejects a wrong answer", False,
                   f"the grader accepted {WRONG_ANSWER!r} with no tool call on task {first.id!r} (score {wrong.score:g})")
    else:
        report.add("rejects a wrong answer", True, f"{WRONG_ANSWER!r} on {first.id!r} scored {wrong.score:g}")
    return report


def check_environment(env_or_spec: Environment | EnvSpec | str, n: int = 5,
                      sandbox: SandboxConfig | None = None) -> CheckReport:
    """Check an environment (an Environment or a load spec); run its reference solver on `n` tasks per split."""
    return asyncio.run(acheck_environment(env_or_spec, n, sandbox))
