"""The repeated-reply guard: a model answering the same state with the same text is resampled, then stopped.

Greedy decoding answers an unchanged state with an unchanged reply, so a model that got a corrective
observation (or an observation it has already answered) would loop until the step limit. Such a reply is
resampled at a temperature (recorded on the step); if it still repeats, the episode ends as `stuck`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

from agentkd.codeact.normalize import normalize_code
from agentkd.codeact.parsing import parse_action, squash
from agentkd.policies.base import PolicyError
from agentkd.records import Resample, Step, Usage
from agentkd.sampling import RESAMPLE_TEMPERATURE

if TYPE_CHECKING:  # the agent loop imports StuckError; litellm need not load with it
    from agentkd.models.client import Completion

RESAMPLE_ATTEMPTS = 2


class StuckError(PolicyError):
    """The model kept giving the same reply to the same state (the episode ends with status `stuck`).

    `usage`: by role, what the calls that found it stuck cost (the episode records them as `stopped_usage`)."""

    def __init__(self, message: str, usage: dict[str, Usage] | None = None) -> None:
        super().__init__(message)
        self.usage = usage or {}


def repeats_previous(text: str, steps: list[Step]) -> bool:
    """Whether `text` answers a state the model has already answered the same way: the same reply right after a
    reply that could not run (a corrective observation), or the same code (whatever the thought) as an earlier
    step that saw the same observation as the model sees now (which catches A, B, A, B loops too)."""
    if not steps:
        return False
    previous = steps[-1]
    if previous.action is None and squash(text) == squash(previous.output):
        return True
    code = parse_action(text).code
    if code is None:
        return False
    key, now = normalize_code(code), previous.observation
    return any(step.action is not None and steps[j - 1].observation == now and normalize_code(step.action) == key
               for j, step in enumerate(steps) if j >= 1)


async def guard_repeats(
    first: Completion, steps: list[Step], resample: Callable[[float], Awaitable[Completion]],
    temperature: float = RESAMPLE_TEMPERATURE, attempts: int = RESAMPLE_ATTEMPTS, *, role: str,
) -> tuple[Completion, Resample | None]:
    """`first`, or a resample at `temperature` when it repeats the previous reply for the same state.

    Returns the completion to act on and what was done (None when `first` did not repeat);
    raises StuckError (carrying every sample's usage under `role`) when every resample repeats too. Usage of
    discarded samples is added to the result's."""
    if not repeats_previous(first.text, steps):
        return first, None
    spent = first.usage
    for attempt in range(1, attempts + 1):
        again = await resample(temperature)
        spent = spent + again.usage
        if not repeats_previous(again.text, steps):
            again.usage = spent
            again.latency_s += first.latency_s
            return again, Resample(reason="repeated the previous reply for the same state", temperature=temperature,
                                   attempts=attempt)
    raise StuckError(f"the model repeated its previous reply for the same state, also in {attempts} samples at "
                     f"temperature {temperature}; the episode is stuck", usage={role: spent})
