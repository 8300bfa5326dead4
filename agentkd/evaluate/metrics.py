"""Evaluation metrics: success with a 95% interval, steps, tokens and $ by role (cache-aware and at list prices),
deferrals, x cheaper than the teacher, break-even."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from agentkd.evaluate.prices import Price, PriceSettings
from agentkd.records import Trajectory, Usage

Prices = dict[str, Price]
"""role -> the price stated for it (numbers are accepted: `(prompt, completion[, cached[, write]])` per 1M tokens)."""


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a success rate."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def episode_cost(traj: Trajectory, prices: PriceSettings | None = None) -> float:
    """Cache-aware $ of one episode (default prices: the stated default pair of each role)."""
    prices = prices or PriceSettings()
    return sum(prices.dollars(role, u) for role, u in traj.usage_by_role().items())


def episode_list_cost(traj: Trajectory, prices: PriceSettings | None = None) -> float:
    """$ of one episode with every prompt token at list price."""
    prices = prices or PriceSettings()
    return sum(prices.list_dollars(role, u) for role, u in traj.usage_by_role().items())


class RoleUsage(BaseModel):
    """Mean per episode for one role."""

    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    cached_prompt_tokens: float = 0.0
    """The part of prompt_tokens read from the server's prompt cache."""
    cost_usd: float = 0.0
    """Cache-aware $ (cached prompt tokens at the cache-read price)."""
    list_cost_usd: float = 0.0
    """$ with every prompt token at list price."""
    steps: float = 0.0
    mean_step_latency_s: float = 0.0


class VersusTeacher(BaseModel):
    """A policy's $ per episode against the teacher's, both priced the same way."""

    teacher_cost_per_episode_usd: float
    teacher_list_cost_per_episode_usd: float
    cheaper: float | None
    """The teacher's cache-aware $ per episode ÷ this policy's ("x cheaper"); None when this policy costs $0."""
    cheaper_at_list: float | None
    """The same at list prices."""
    basis: str
    """Which teacher episodes were priced, e.g. `eval/teacher on the same 10 tasks`."""


class BreakEven(BaseModel):
    """Episodes after which the upfront demonstration cost (collecting the run's teacher trajectories) is paid
    back by the saving per episode against the teacher, at cache-aware prices."""

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
    """Cache-aware $ per episode: prompt tokens read from the cache at the cache-read price (see `prices`)."""
    list_cost_per_episode_usd: float = 0.0
    """$ per episode with every prompt token at list price."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """role -> the price its tokens were priced at, and where it comes from (`source`)."""
    counted_by: dict[str, str] = Field(default_factory=dict)
    """role -> the tokenizer that counted its tokens, for roles no model server reported them for (the reference
    teacher, priced as a model teacher would be)."""
    student_share_of_steps: float
    deferral_rate: float | None = None
    mean_episode_latency_s: float
    versus_teacher: VersusTeacher | None = None
    """$ against the teacher (x cheaper); None for the teacher itself, or when the run has no teacher episodes."""
    break_even: BreakEven | None = None
    details: dict[str, Any] = Field(default_factory=dict)


def summarize(trajs: list[Trajectory], policy: str, split: str, prices: PriceSettings | None = None) -> EvalReport:
    """Aggregate metrics over evaluated trajectories, priced with `prices` (default: each role's stated default)."""
    prices = prices or PriceSettings()
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
            cached_prompt_tokens=sum(u.cached_prompt_tokens for u in usages) / n,
            cost_usd=sum(prices.dollars(role, u) for u in usages) / n,
            list_cost_usd=sum(prices.list_dollars(role, u) for u in usages) / n,
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
        list_cost_per_episode_usd=sum(episode_list_cost(t, prices) for t in trajs) / n,
        prices={role: prices.price(role) for role in by_role if role in prices.prices},
        counted_by=counted_by(trajs),
        student_share_of_steps=sum(s.role == "student" for s in steps) / len(steps) if steps else 0.0,
        deferral_rate=sum(s.deferred for s in voted) / len(voted) if voted else None,
        mean_episode_latency_s=sum(t.duration_s for t in trajs) / n,
    )


def counted_by(trajs: list[Trajectory]) -> dict[str, str]:
    """role -> the tokenizer that counted its tokens (`Usage.counted_by`), for roles whose tokens were counted."""
    out: dict[str, str] = {}
    for traj in trajs:
        for step in traj.steps:
            for role, usage in step.usage_split().items():
                if usage.counted_by and role not in out:
                    out[role] = usage.counted_by
    return out


def versus_teacher(policy_cost: float, policy_list_cost: float, teacher_cost: float, teacher_list_cost: float,
                   basis: str) -> VersusTeacher:
    """x cheaper than the teacher, cache-aware and at list prices."""
    return VersusTeacher(teacher_cost_per_episode_usd=teacher_cost, teacher_list_cost_per_episode_usd=teacher_list_cost,
                         cheaper=teacher_cost / policy_cost if policy_cost > 0 else None,
                         cheaper_at_list=teacher_list_cost / policy_list_cost if policy_list_cost > 0 else None,
                         basis=basis)


def break_even(upfront_usd: float, teacher_cost: float, policy_cost: float) -> BreakEven:
    """Upfront cost ÷ saving per episode (None with a note when there is no saving)."""
    saving = teacher_cost - policy_cost
    result = BreakEven(upfront_usd=upfront_usd, teacher_cost_per_episode_usd=teacher_cost,
                       policy_cost_per_episode_usd=policy_cost, saving_per_episode_usd=saving)
    if teacher_cost <= 0:
        result.note = "the teacher costs $0 per episode at the prices given (--teacher-price)"
    elif saving <= 0:
        result.note = "no saving per episode: the policy costs at least as much as the teacher"
    else:
        result.episodes = upfront_usd / saving
    return result
