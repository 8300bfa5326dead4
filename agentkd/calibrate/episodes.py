"""Thresholds checked by whole episodes: the cascade runs the dev slice at each candidate threshold, and the
cheapest one whose success stays within `margin` of the teacher's on the same tasks is chosen.

The step-accuracy target estimates what a threshold costs in success; episodes measure it. On factqa the target
(0.95) left the teacher a third of the test steps although the fine-tuned student alone solved as many dev tasks as
its teacher; the episode check chose 0.9, 6.1x cheaper than the teacher on test at a higher success
(docs/results/2026-12-06-cascade-thresholds-on-dev.md).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agentkd.specs import PolicySpec

CHECK_EVAL_PREFIX = "calibrate-"
"""The episode checks' evaluations are RUN/eval/calibrate-<calibration>-c<threshold>.json."""


class EpisodeCheck(BaseModel):
    """The cascade at one threshold on the calibration's dev tasks."""

    threshold: float
    episodes: int
    successes: int
    student_share: float
    """The student's share of the steps."""
    cost_per_episode_usd: float
    evaluation: str
    """The evaluation's name (RUN/eval/<evaluation>.json)."""

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


class EpisodeChoice(BaseModel):
    """Every threshold checked, the teacher's success on the same tasks, and the one chosen."""

    teacher_successes: int
    episodes: int
    margin: float = Field(ge=0.0, le=1.0)
    """A threshold qualifies when its success rate is at least the teacher's minus this."""
    checks: list[EpisodeCheck]
    chosen: EpisodeCheck | None
    """The cheapest qualifying threshold (the lowest on a tie); None when none qualifies."""


def check_name(calibration: str, threshold: float) -> str:
    """The evaluation name of the check of `threshold`."""
    return f"{CHECK_EVAL_PREFIX}{calibration}-c{threshold:g}"


def choose_by_episodes(checks: list[EpisodeCheck], teacher_successes: int, episodes: int,
                       margin: float) -> EpisodeChoice:
    """The cheapest check whose success rate is at least the teacher's (`teacher_successes` of `episodes`) minus
    `margin`."""
    floor = (teacher_successes / episodes if episodes else 0.0) - margin - 1e-9
    qualifying = [c for c in checks if c.success_rate >= floor]
    chosen = min(qualifying, key=lambda c: (c.cost_per_episode_usd, c.threshold)) if qualifying else None
    return EpisodeChoice(teacher_successes=teacher_successes, episodes=episodes, margin=margin,
                         checks=sorted(checks, key=lambda c: c.threshold), chosen=chosen)


def with_threshold(spec: PolicySpec, threshold: float) -> PolicySpec:
    """The cascade `spec` with its confidence threshold set to `threshold`."""
    return PolicySpec(kind=spec.kind, settings={**spec.settings, "threshold": threshold})
