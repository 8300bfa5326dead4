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
from agentkd.records import Step, Task, Usage
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
    """Acts with the environment's reference solver (`--teacher reference`).

    The solver spends nothing, but each step records the tokens a model teacher would have spent on it (so that it
    can be priced like one: `agentkd.evaluate.prices`): its prompt is the conversation so far rendered with a real
    chat template, the cached part is what that prompt shares with the teacher's previous prompt in the episode (the
    prefix a provider's prompt cache would serve), and the completion is the step's text. `Usage.counted_by` names
    the tokenizer (`agentkd.models.token_count`); `cost_usd` stays 0: nothing was billed."""

    name = "teacher:reference"
    role = "teacher"
    spec = PolicySpec(kind="reference")

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        started = time.perf_counter()
        # a slipped step (error-recovery augmentation) changed nothing: the solver is replayed without it
        observations = [s.observation for s in ctx.steps if s.injected is None]
        text = replay_reference(ctx.env, ctx.task, observations, ctx.state)
        usage = counted_usage(ctx.messages, ctx.steps, text)
        return PolicyOutput(text=text, role="teacher", model=REFERENCE_MODEL, usage=usage,
                            latency_s=time.perf_counter() - started)


def counted_usage(messages: list[dict[str, Any]], steps: list[Step], text: str) -> Usage:
    """What a model teacher would spend writing `text` as the next step of the conversation `messages`: one call,
    its rendered prompt, the part of it shared with the teacher's previous call in this episode (read from the
    cache), and the step's tokens."""
    from agentkd.models.prefix import common_prefix
    from agentkd.models.token_count import token_counter

    counter = token_counter()
    prompt = list(counter.prompt_tokens(messages))
    cached = 0
    previous = previous_teacher_call(steps)
    if previous is not None:
        # every step since adds its reply and its observation to the conversation
        earlier = messages[:len(messages) - 2 * (len(steps) - previous)]
        if earlier:
            cached = min(common_prefix(list(counter.prompt_tokens(earlier)), prompt), len(prompt))
    return Usage(prompt_tokens=len(prompt), completion_tokens=counter.count(text), cached_prompt_tokens=cached,
                 calls=1, counted_by=counter.label)


def previous_teacher_call(steps: list[Step]) -> int | None:
    """The index of the last step the teacher was called on (it acted, or a cascade deferred to it)."""
    for step in reversed(steps):
        if "teacher" in step.usage_split():
            return step.index
    return None


class ReferenceSettings(BaseModel):
    """The `reference` kind has no settings."""

    model_config = ConfigDict(extra="forbid")


@register_policy("reference", ReferenceSettings)
def build_reference(settings: ReferenceSettings, context: BuildContext) -> ReferencePolicy:
    """The environment's scripted reference solver (free, exact; not a real model)."""
    return ReferencePolicy()
