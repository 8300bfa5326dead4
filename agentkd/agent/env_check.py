"""`agentkd check-env`: load an environment, validate its parts, and run its grader both ways.

Checks, in order: it loads; every split has tasks; task ids are unique (across splits too) and
prompts non-empty; tools are described and return values the agent's code can receive; the grader
is callable and scores in [0, 1]; per-episode state is fresh and can be branched for trial runs (or
is declared branchable=False); the reference solver (if any) solves a sample of each split; and a
deliberately wrong policy (answers "agentkd-wrong-answer" at once, writing nothing) is rejected by the
grader. Every check runs even when an earlier one fails (a check that needs a task is skipped only
when the environment has none); missing default splits (train for collect, test for eval and
pipeline) are warnings.
"""

from __future__ import annotations

import asyncio
import json
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from agentkd.env.environment import Environment
from agentkd.errors import GraderError, StateNotBranchableError
from agentkd.policies.base import PolicyContext, PolicyOutput
from agentkd.records import Task, Trajectory
from agentkd.sandbox.host import SandboxConfig
from agentkd.specs import EnvSpec

WRONG_ANSWER = "agentkd-wrong-answer"
DEFAULT_SPLITS = {"train": "`agentkd collect` runs on it unless given --split",
                  "test": "`agentkd eval` evaluates on it unless given --split"}
"""The splits the commands use unless told otherwise (--split); `agentkd pipeline` uses both."""


@dataclass
class Check:
    """One check: what was checked, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str = ""
    skipped: bool = False
    """Not run: it needs a task and the environment has none (counted as not ok, listed apart from failures)."""
    warning: str = ""
    """Passed, with something to know (e.g. a split the commands use by default is missing)."""


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
        return [c for c in self.checks if not c.ok and not c.skipped]

    @property
    def skipped(self) -> list[Check]:
        return [c for c in self.checks if c.skipped]

    @property
    def warnings(self) -> list[str]:
        return [c.warning for c in self.checks if c.warning]

    def add(self, name: str, ok: bool, detail: str = "", warning: str = "") -> Check:
        check = Check(name, ok, detail, warning=warning)
        self.checks.append(check)
        return check

    def skip(self, name: str, why: str) -> Check:
        check = Check(name, False, f"skipped: {why}", skipped=True)
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


def _missing_default_splits(env: Environment) -> str:
    """A warning for each split the commands use by default that the environment lacks ("" when none)."""
    try:
        splits = set(env.splits)
    except Exception:  # noqa: BLE001 - the splits check reports it
        return ""
    missing = [f"no {name!r} split: {use}, and `agentkd pipeline` needs it" for name, use in DEFAULT_SPLITS.items()
               if name not in splits]
    return "; ".join(missing)


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


@contextmanager
def _watch_tool_results(env: Environment, found: dict[str, str]) -> Iterator[None]:
    """While inside, record in `found` (tool name -> what happened) every tool whose result cannot reach the
    agent's code as it is: the worker receives JSON, so anything else (a set, an object) arrives as its repr
    text and misleads the solver, which then looks like the grader's fault."""
    handler = env.tool_handler

    def watching(state: Any) -> Callable[[str, list[Any], dict[str, Any]], Any]:
        handle = handler(state)

        def call(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
            value = handle(name, args, kwargs)
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                found.setdefault(name, f"tool {name!r} returned a {type(value).__name__} ({_short(value, 50)}), "
                                       "which the agent's code receives as its repr text: return a str, number, "
                                       "bool, None, or a list or dict of those")
            return value

        return call

    env.tool_handler = watching  # type: ignore[method-assign]
    try:
        yield
    finally:
        del env.tool_handler


def _check_grader(env: Environment, task: Task) -> tuple[bool, str]:
    grade = getattr(env, "_grade", None)
    if not callable(grade):
        return False, "the grader is not callable"
    state = env.new_state(task)
    try:
        score = env.grade(task.answer, task, state).score
    except GraderError as exc:
        return False, f"{exc} (graded with the task's own target as the answer)"
    finally:
        env.end_state(state)
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

    report = CheckReport(spec=env_or_spec.name if isinstance(env_or_spec, Environment) else str(env_or_spec))
    try:
        env = load_environment(env_or_spec)
    except Exception as exc:  # noqa: BLE001 - report every way loading can fail
        report.add("loads", False, f"{type(exc).__name__}: {exc}")
        return report
    report.environment = env
    report.add("loads", True, f"{env.name}@{env.version}, max {env.max_steps} steps")

    tasks: dict[str, list[Task]] = {}
    report.add("splits", *_run(lambda: _check_splits(env, tasks)), warning=_missing_default_splits(env))
    first = next((items[0] for items in tasks.values() if items), None)
    report.add("task ids", *_run(lambda: _check_ids(tasks)))
    tools = report.add("tools", *_run(lambda: _check_tools(env)))
    if first is None:
        for name in ("grader", "state", "reference solver", "rejects a wrong answer"):
            report.skip(name, "it needs a task, and the environment has none (see splits)")
        return report
    report.add("grader", *_run(lambda: _check_grader(env, first)))
    report.add("state", *_run(lambda: _check_state(env, first)))

    bad_tools: dict[str, str] = {}
    with _watch_tool_results(env, bad_tools):
        if env.reference_solver is None:
            report.add("reference solver", True, "none declared (skipped)")
        else:
            for split, items in tasks.items():
                if not items:
                    report.skip(f"reference solver ({split})", f"the {split!r} split has no tasks")
                    continue
                report.add(f"reference solver ({split})", *await _solve(env, items, n, sandbox, bad_tools))
        report.add("rejects a wrong answer", *await _reject_wrong(env, first, sandbox))
    if bad_tools and tools.ok:
        tools.ok = False
        tools.detail = "; ".join(bad_tools.values())
    return report


async def _solve(env: Environment, items: list[Task], n: int, sandbox: SandboxConfig | None,
                 bad_tools: dict[str, str]) -> tuple[bool, str]:
    """The reference solver on a sample of a split: (all solved, what happened)."""
    from agentkd.policies.reference import ReferencePolicy

    try:
        trajs = await _episodes(env, ReferencePolicy(), sample_tasks(items, n), sandbox)
    except GraderError as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - anything else the environment's code raised
        return False, f"{type(exc).__name__}: {exc}"
    failures = [_describe_failure(t) for t in trajs if not t.success]
    detail = f"solved {len(trajs) - len(failures)}/{len(trajs)}"
    if failures:
        detail += "; failed: " + "; ".join(failures[:3]) + (" ..." if len(failures) > 3 else "")
        if bad_tools:
            detail += f" (tool results it could not use: {', '.join(bad_tools)}; see tools)"
    return not failures, detail


async def _reject_wrong(env: Environment, first: Task, sandbox: SandboxConfig | None) -> tuple[bool, str]:
    """A wrong answer given at once must fail: (it did, what happened)."""
    try:
        (wrong,) = await _episodes(env, WrongAnswerPolicy(), [first], sandbox)
    except GraderError as exc:  # e.g. a grader that raises on a wrong answer
        return False, f"grading a wrong answer: {exc}"
    except Exception as exc:  # noqa: BLE001 - anything else the environment's code raised
        return False, f"grading a wrong answer raised {type(exc).__name__}: {exc}"
    if wrong.status != "finished":
        return False, f"the episode did not finish: {_describe_failure(wrong)}"
    if wrong.success:
        return False, (f"the grader accepted {WRONG_ANSWER!r} with no tool call on task {first.id!r} "
                       f"(score {wrong.score:g})")
    return True, f"{WRONG_ANSWER!r} on {first.id!r} scored {wrong.score:g}"


def check_environment(env_or_spec: Environment | EnvSpec | str, n: int = 5,
                      sandbox: SandboxConfig | None = None) -> CheckReport:
    """Check an environment (an Environment or a load spec); run its reference solver on `n` tasks per split."""
    return asyncio.run(acheck_environment(env_or_spec, n, sandbox))
