"""Evaluation metrics: success with a 95% interval, steps, tokens and $ by role, deferrals, break-even."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from agentkd.records import Trajectory, Usage

Prices = dict[str, tuple[float, float]]
"""role -> ($ per 1M prompt tokens, $ per 1M completion tokens); overrides recorded costs."""


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a success rate."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def priced(usage: Usage, role: str, prices: Prices | None) -> float:
    """The $ cost of `usage`, from `prices` when given for the role, else as recorded."""
    if prices and role in prices:
        per_in, per_out = prices[role]
        return (usage.prompt_tokens * per_in + usage.completion_tokens * per_out) / 1e6
    return usage.cost_usd


def episode_cost(traj: Trajectory, prices: Prices | None = None) -> float:
    return sum(priced(u, role, prices) for role, u in traj.usage_by_role().items())


class RoleUsage(BaseModel):
    """Mean per episode for one role."""

    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    cost_usd: float = 0.0
    steps: float = 0.0
    mean_step_latency_s: float = 0.0


class BreakEven(BaseModel):
    """Episodes after which the cascade's upfront demonstration cost is paid back."""

    upfront_usd: float
    teacher_cost_per_episode_usd: float
    policy_cost_per_episode_usd: float
    saving_per_episode_usd: float
    episodes: float | None = None
    note: str = ""


class EvalReport(BaseModel):
    policy: str
    split: str
    episodes: int
    successes: int
    success_rate: float
    success_ci95: tuple[float, float]
    errors: int
    step_limit: int
    mean_steps: float
    per_episode_by_role: dict[str, RoleUsage] = Field(default_factory=dict)
    cost_per_episode_usd: float
    student_share_of_steps: float
    deferral_rate: float | None = None
    mean_episode_latency_s: float
    break_even: BreakEven | None = None
    details: dict[str, Any] = Field(default_factory=dict)


def summarize(trajs: list[Trajectory], policy: str, split: str, prices: Prices | None = None) -> EvalReport:
    """Aggregate metrics over evaluated trajectories."""
    n = len(trajs)
    if n == 0:
        raise ValueError("no trajectories to summarise")
    successes = sum(t.success for t in trajs)
    steps = [s for t in trajs for s in t.steps]
    by_role: dict[str, RoleUsage] = {}
    for role in sorted({r for t in trajs for r in t.usage_by_role()} | {s.role for s in steps}):
        usages = [t.usage_by_role().get(role, Usage()) for t in trajs]
        acted = [s for s in steps if s.role == role]
        by_role[role] = RoleUsage(
            prompt_tokens=sum(u.prompt_tokens for u in usages) / n,
            completion_tokens=sum(u.completion_tokens for u in usages) / n,
            cost_usd=sum(priced(u, role, prices) for u in usages) / n,
            steps=len(acted) / n,
            mean_step_latency_s=sum(s.latency_s for s in acted) / len(acted) if acted else 0.0,
        )
    voted = [s for s in steps if s.cascaded]
    return EvalReport(
        policy=policy,
        split=split,
        episodes=n,
        successes=successes,
        success_rate=successes / n,
        success_ci95=wilson_interval(successes, n),
        errors=sum(t.status == "error" for t in trajs),
        step_limit=sum(t.status == "step_limit" for t in trajs),
        mean_steps=len(steps) / n,
        per_episode_by_role=by_role,
        cost_per_episode_usd=sum(episode_cost(t, prices) for t in trajs) / n,
        student_share_of_steps=sum(s.role == "student" for s in steps) / len(steps) if steps else 0.0,
        deferral_rate=sum(s.deferred for s in voted) / len(voted) if voted else None,
        mean_episode_latency_s=sum(t.duration_s for t in trajs) / n,
    )


def break_even(upfront_usd: float, teacher_cost: float, policy_cost: float) -> BreakEven:
    """Upfront cost ÷ saving per episode (None with a note when there is no saving)."""
    saving = teacher_cost - policy_cost
    result = BreakEven(upfront_usd=upfront_usd, teacher_cost_per_episode_usd=teacher_cost,
                       policy_cost_per_episode_usd=policy_cost, saving_per_episode_usd=saving)
    if teacher_cost <= 0:
        result.note = "the teacher costs $0 per episode (a reference teacher spends no tokens; price a model teacher with --teacher-price)"
    elif saving <= 0:
        result.note = "no saving per episode: the cascade costs at least as much as the teacher"
    else:
        result.episodes = upfront_usd / saving
    return result
