"""How sure a model is of a CodeAct step: the probability it gave the tokens of the step's action (its code).

The thought is left out: two phrasings of the same reasoning mean the same step, and a small model's doubt about
words says little about whether its code is right. The confidence is the geometric mean of the action tokens'
probabilities, exp(mean log-probability), so long and short actions compare on one scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agentkd.models.client import Completion

FENCE = "```"

TokenLogprobs = list[tuple[str, float]]
"""Generated tokens as (text, natural-log probability)."""


@dataclass
class Segment:
    """The tokens of one model call that wrote part of a reply."""

    tokens: TokenLogprobs
    in_code: bool = False
    """The call continued a reply from inside an opened code block (a code follow-up): its first token is code."""


def action_logprobs(segment: Segment) -> list[float]:
    """The log-probabilities of the tokens inside the segment's code block: after the opening fence's line (or
    from the start when `in_code`), up to the closing fence. Empty when the segment writes no code."""
    text = "".join(piece for piece, _ in segment.tokens)
    if segment.in_code:
        start = 0
    else:
        fence = text.find(FENCE)
        newline = text.find("\n", fence + len(FENCE)) if fence >= 0 else -1
        if newline < 0:
            return []
        start = newline + 1
    end = text.find(FENCE, start)
    end = len(text) if end < 0 else end
    out, at = [], 0
    for piece, logprob in segment.tokens:
        if at < end and at + len(piece) > start:  # the token overlaps the code
            out.append(logprob)
        at += len(piece)
    return out


def action_confidence(segments: list[Segment]) -> float | None:
    """exp(mean log-probability) of the action tokens of a reply written by `segments`; None when it has no code."""
    logprobs = [lp for segment in segments for lp in action_logprobs(segment)]
    if not logprobs:
        return None
    return math.exp(sum(logprobs) / len(logprobs))


@dataclass
class ScoredSample:
    """One sampled step and how confident the model was of its action."""

    completion: Completion
    confidence: float | None
    """None: no code, or the model gave no log-probabilities."""

    @property
    def text(self) -> str:
        return self.completion.text
