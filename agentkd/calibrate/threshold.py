"""Choosing the confidence threshold of a cascade from scored steps of a dev slice.

A step is accurate when whoever acts on it gives the teacher's result: a step the student takes is accurate when its
action matches the teacher's on the same state; a deferred step is the teacher's own. So the cascade's estimated step
accuracy at a threshold is 1 - (student-taken steps that miss the teacher's result) / (all steps), and it can only
fall as the threshold falls and the student takes more steps. The threshold chosen is the lowest one (the largest
student share) whose estimated accuracy stays at or above the target.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field


class CalibrationPoint(BaseModel):
    """One step of a dev-slice episode: how confident the student was and whether it would have been right."""

    task_id: str
    step: int
    confidence: float | None
    """None: the student's reply had no code (always deferred)."""
    matches_teacher: bool


class ThresholdChoice(BaseModel):
    """A threshold and what it does on the scored steps."""

    threshold: float = Field(ge=0.0, le=1.0)
    student_share: float
    """Share of the steps whose confidence reaches the threshold (the student takes them)."""
    step_accuracy: float
    """Estimated accuracy of the cascade's steps (deferred steps count as the teacher's)."""
    student_accuracy: float | None
    """Share of the student-taken steps that match the teacher's result (None: it takes none)."""


def threshold_curve(points: list[CalibrationPoint]) -> list[ThresholdChoice]:
    """Every distinct cut of the scored steps, from deferring everything (threshold 1) to the lowest confidence seen,
    student share rising."""
    total = len(points)
    if total == 0:
        return []
    scored = sorted((p for p in points if p.confidence is not None), key=lambda p: -float(p.confidence or 0.0))
    curve = [ThresholdChoice(threshold=1.0, student_share=0.0, step_accuracy=1.0, student_accuracy=None)]
    wrong = taken = 0
    for i, point in enumerate(scored):
        taken += 1
        wrong += not point.matches_teacher
        below = scored[i + 1].confidence if i + 1 < len(scored) else None
        if below is not None and below == point.confidence:
            continue  # equal confidences are taken together
        curve.append(ThresholdChoice(threshold=_round_between(below, float(point.confidence or 0.0)),
                                     student_share=taken / total, step_accuracy=1 - wrong / total,
                                     student_accuracy=(taken - wrong) / taken))
    return curve


def choose_threshold(points: list[CalibrationPoint], target: float) -> ThresholdChoice:
    """The cut with the largest student share whose estimated step accuracy is at least `target`."""
    curve = threshold_curve(points)
    if not curve:
        raise ValueError("no scored steps to calibrate on")
    return max((c for c in curve if c.step_accuracy >= target - 1e-12), key=lambda c: c.student_share)


def _round_between(below: float | None, at: float) -> float:
    """The shortest decimal t with below < t <= at (a short threshold to write in a policy name), else `at`."""
    low = below if below is not None else 0.0
    for digits in range(2, 7):
        scale = 10**digits
        t = math.floor(at * scale) / scale
        if low < t <= at:
            return t
    return at
