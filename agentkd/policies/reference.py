"""The environment's scripted reference solver, driven like any other policy."""

from __future__ import annotations

import inspect
import time
from typing import Any, Generator

from pydantic import BaseModel, ConfigDict

from agentkd.env.environment import Environment
from agentkd.errors import EnvironmentDefinitionError
from agentkd.policies.base import PolicyContext, PolicyError, PolicyOutput
from agentkd.policies.registry import BuildContext, register_policy
from agentkd.records import Task
from agentkd.specs import PolicySpec

REFERENCE_MODEL = "reference"


def replay_reference(env: Environment, task: Task, observations: list[str], state: Any = None) -> str:
    """The solver's next output after it has seen `observations` (the solver is replayed, so it is stateless)."""
    solver = env.reference_solver
    if solver is None:
        raise EnvironmentDefinitionError(f"environment {env.name!r} has no reference solver; use a model teacher")
    wants_state = "state" in inspect.signature(solver).parameters
    gen: Generator[str, str, None] = solver(task, state) if wants_state else solver(task)
    try:
        output = next(gen)
        for observation in observations:
            output = gen.send(observation)
    except StopIteration:
        raise PolicyError(
            f"the reference solver of {env.name!r} stopped after {len(observations)} step(s) without final_answer"
        ) from None
    finally:
        gen.close()
    return output


class ReferencePolicy:
    """Acts with the environment's reference solver (`--teacher reference`)."""

    name = "teacher:reference"
    role = "teacher"
    spec = PolicySpec(kind="reference")

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        started = time.perf_counter()
        # a slipped step (error-recovery augmentation) changed nothing: the solver is replayed without it
        observations = [s.observation for s in ctx.steps if s.injected is None]
        text = replay_reference(ctx.env, ctx.task, observations, ctx.state)
        return PolicyOutput(text=text, role="teacher", model=REFERENCE_MODEL, latency_s=time.perf_counter() - started)


class ReferenceSettings(BaseModel):
    """The `reference` kind has no settings."""

    model_config = ConfigDict(extra="forbid")


@register_policy("reference", ReferenceSettings)
def build_reference(settings: ReferenceSettings, context: BuildContext) -> ReferencePolicy:
    """The environment's scripted reference solver (free, exact; not a real model)."""
    return ReferencePolicy()
