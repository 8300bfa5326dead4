"""The policy contract: given the episode so far, produce the next step's text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentkd.env.environment import Environment
from agentkd.records import Injection, Resample, Role, Step, Task, Usage, Vote


@dataclass
class PolicyContext:
    """Everything a policy may look at when choosing the next step."""

    env: Environment
    task: Task
    messages: list[dict[str, Any]]
    steps: list[Step]
    state: Any = None
    sandbox: Any = None
    """Awaitable giving the episode's started PythonSandbox (`sb = await ctx.sandbox`), for
    policies that try candidate actions in a forked copy of the worker."""

    @property
    def step_index(self) -> int:
        return len(self.steps)


@dataclass
class PolicyOutput:
    """One step's text and its accounting."""

    text: str
    role: Role
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    candidates: list[str] | None = None
    vote: Vote | None = None
    role_usage: dict[str, Usage] = field(default_factory=dict)
    resampled: Resample | None = None
    """What the repeated-reply guard did, when it resampled (agentkd.policies.repeats)."""
    injected: Injection | None = None
    """Set on a deliberately slipped step (error-recovery augmentation, agentkd.collect.recovery)."""


@runtime_checkable
class Policy(Protocol):
    """Anything with a name and an async `act`. Policies that can be rebuilt from data also carry
    `spec` (an `agentkd.PolicySpec`), which every trajectory they write records."""

    name: str

    async def act(self, ctx: PolicyContext) -> PolicyOutput: ...


class PolicyError(Exception):
    """A policy could not produce a step (recorded as an errored trajectory)."""
