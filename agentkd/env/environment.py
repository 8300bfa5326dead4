"""The Environment: tasks with splits, tools, instructions, a grader, limits, state, a reference solver."""

from __future__ import annotations

import copy
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Sequence

from agentkd.env.graders import Grader, resolve_grader
from agentkd.env.tasks import TaskSet, TaskSource
from agentkd.errors import EnvironmentDefinitionError, StateNotBranchableError
from agentkd.records import Task
from agentkd.tools.decorator import Tool, as_tool

ReferenceSolver = Callable[..., Generator[str, str, None]]
"""A generator function `solve(task[, state])` that yields model-style outputs
("Thought: ...\\n```python\\n...\\n```") and receives each step's observation back."""

RESERVED_NAMES = {"final_answer", "print"}
_LOG = logging.getLogger("agentkd.env")
_SLOW_BRANCH_WARNED: set[str] = set()


@dataclass
class Grade:
    score: float
    success: bool


class Environment:
    """A task family an agent can be run on, declared in plain Python.

    Per-episode state: `setup_state(task)` builds it; `fork_state(state)` returns an independent branch of it
    for trial runs (default: a deep copy), or `branchable=False` says it has none (policies that try
    candidates then fall back to code agreement); `teardown_state(state)` runs when an episode ends,
    however it ends (and on every branch after its trial).
    """

    def __init__(
        self,
        name: str,
        tasks: TaskSource,
        grader: str | Grader | None,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        instructions: str = "",
        max_steps: int = 10,
        splits: Iterable[str] | None = None,
        setup_state: Callable[[Task], Any] | None = None,
        reference_solver: ReferenceSolver | None = None,
        success_threshold: float = 1.0,
        version: str = "1",
        fork_state: Callable[[Any], Any] | None = None,
        teardown_state: Callable[[Any], Any] | None = None,
        branchable: bool = True,
    ) -> None:
        if not name or not isinstance(name, str):
            raise EnvironmentDefinitionError("environment needs a non-empty name")
        self.name = name
        self.version = version
        self.instructions = instructions
        if not isinstance(max_steps, int) or max_steps < 1:
            raise EnvironmentDefinitionError(f"max_steps must be a positive integer, got {max_steps!r}")
        self.max_steps = max_steps
        self.success_threshold = success_threshold
        self._grade = resolve_grader(grader, owner=name)
        self.tools: dict[str, Tool] = {}
        for item in tools:
            t = as_tool(item)
            if t.name in self.tools:
                raise EnvironmentDefinitionError(f"two tools are named {t.name!r}; tool names must be unique")
            if t.name in RESERVED_NAMES:
                raise EnvironmentDefinitionError(f"tool name {t.name!r} is reserved by agentkd; rename the tool")
            self.tools[t.name] = t
        if setup_state is not None and not callable(setup_state):
            raise EnvironmentDefinitionError("setup_state must be a callable taking the task")
        self.setup_state = setup_state
        needs_state = [t.name for t in self.tools.values() if "state" in t.injected]
        if needs_state and setup_state is None:
            raise EnvironmentDefinitionError(
                f"tools {needs_state} take `state` but the environment has no setup_state; add one"
            )
        if reference_solver is not None and not inspect.isgeneratorfunction(reference_solver):
            raise EnvironmentDefinitionError(
                "reference_solver must be a generator function that yields each step's output "
                "and receives the observation (see the README's environment guide)"
            )
        self.reference_solver = reference_solver
        for hook_name, hook in (("fork_state", fork_state), ("teardown_state", teardown_state)):
            if hook is not None and not callable(hook):
                raise EnvironmentDefinitionError(f"{hook_name} must be a callable taking the state")
        if fork_state is not None and not branchable:
            raise EnvironmentDefinitionError("fork_state and branchable=False contradict each other; declare one")
        self.fork_state = fork_state
        self.teardown_state = teardown_state
        self.branchable = branchable
        self.task_set = TaskSet(tasks, splits)

    @property
    def splits(self) -> list[str]:
        return self.task_set.splits

    def tasks(self, split: str, n: int | None = None) -> list[Task]:
        """The first `n` tasks of `split` (all when n is None)."""
        tasks = self.task_set.get(split)
        return tasks if n is None else tasks[:n]

    def new_state(self, task: Task) -> Any:
        """Fresh per-episode state (None for stateless environments)."""
        return self.setup_state(task) if self.setup_state else None

    def branch_state(self, state: Any) -> Any:
        """An independent copy of an episode's state for a trial run (self-consistent generation, result
        agreement): `fork_state(state)` when declared, else a deep copy. Raises StateNotBranchableError
        (saying what to declare) when the environment says branchable=False or the copy fails."""
        if state is None:
            return None
        what = f"the per-episode state of environment {self.name!r} ({type(state).__name__})"
        if not self.branchable:
            raise StateNotBranchableError(f"{what} cannot be branched: the environment declares branchable=False")
        started = time.monotonic()
        try:
            branch = self.fork_state(state) if self.fork_state else copy.deepcopy(state)
        except Exception as exc:  # noqa: BLE001 - any failure to copy means: not branchable
            how = "its fork_state failed" if self.fork_state else "it cannot be deep-copied"
            raise StateNotBranchableError(
                f"{what} cannot be branched: {how} ({type(exc).__name__}: {exc}). Declare how to branch it with "
                "Environment(fork_state=...) or that it cannot be branched with branchable=False "
                "(docs/environments.md, 'States that cannot be copied')") from exc
        if branch is state:
            raise StateNotBranchableError(f"{what} cannot be branched: fork_state returned the state itself, "
                                          "so a trial would change the episode; return an independent copy")
        took = time.monotonic() - started
        if took > 1.0 and self.name not in _SLOW_BRANCH_WARNED:
            _SLOW_BRANCH_WARNED.add(self.name)
            _LOG.warning("branching the state of environment %r took %.1f s per trial; if it holds something live, "
                         "declare fork_state=... or branchable=False", self.name, took)
        return branch

    def end_state(self, state: Any) -> None:
        """Run `teardown_state(state)` if declared (never raises: a failing teardown is logged)."""
        if self.teardown_state is None or state is None:
            return
        try:
            self.teardown_state(state)
        except Exception as exc:  # noqa: BLE001 - a failing teardown must not fail the episode
            _LOG.warning("teardown_state of environment %r failed: %s: %s", self.name, type(exc).__name__, exc)

    def tool_handler(self, state: Any) -> Callable[[str, list[Any], dict[str, Any]], Any]:
        """The host-side function that serves the worker's tool calls for one episode."""

        def handle(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
            return self.tools[name](*args, state=state, **kwargs)

        return handle

    def grade(self, answer: Any, task: Task, state: Any = None) -> Grade:
        """Score an answer (and/or the final state) for a task; GraderError when the grader raises or returns
        anything but a number in [0, 1]."""
        score = self._grade(answer, task, state)
        return Grade(score=score, success=score >= self.success_threshold)

    def tools_prompt(self) -> str:
        """All tool descriptions, for the system prompt."""
        return "\n\n".join(t.prompt() for t in self.tools.values())

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary, recorded in run.json."""
        return {
            "name": self.name,
            "version": self.version,
            "splits": self.splits,
            "tools": list(self.tools),
            "max_steps": self.max_steps,
            "has_reference_solver": self.reference_solver is not None,
        }
