"""What a policy costs against the teacher: $ under a stated price pair, FLOPs, cost ratio and break-even.

Tokens are counted once per model call: a student call that returns n samples counts its prompt once and
its n completions; a deferred step adds the teacher's call. FLOPs use the usual estimate 2 * params * tokens.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkd.evaluate.metrics import wilson_interval
from agentkd.records import Trajectory, Usage

PAPER_PRICES: dict[str, tuple[float, float]] = {"teacher": (3.0, 15.0), "student": (0.40, 1.60)}
"""$ per 1M prompt / completion tokens: the in-context distillation paper's pair at list prices."""

ROLES = ("teacher", "student")


class PriceSettings(BaseModel):
    """The price pair and model sizes a cost table is computed with."""

    model_config = ConfigDict(extra="forbid")

    prices: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(PAPER_PRICES))
    params: dict[str, float] = Field(default_factory=dict)
    """role -> parameters of the model acting in that role (for FLOPs); a role left out counts 0 FLOPs."""
    cached_share: float = Field(1.0, ge=0.0, le=1.0)
    """The share of the prompt price paid for prompt tokens the server read from its cache (1: no discount, as at
    the paper's list prices; about 0.1 for Anthropic's cache reads, 0.5 for OpenAI's cached input)."""

    def dollars(self, role: str, usage: Usage) -> float:
        per_prompt, per_completion = self.prices.get(role, (0.0, 0.0))
        cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
        prompt = (usage.prompt_tokens - cached) + cached * self.cached_share
        return (prompt * per_prompt + usage.completion_tokens * per_completion) / 1e6

    def flops(self, role: str, usage: Usage) -> float:
        return 2.0 * self.params.get(role, 0.0) * (usage.prompt_tokens + usage.completion_tokens)


class CostRow(BaseModel):
    """One evaluated policy, per episode unless said."""

    name: str
    policy: str
    episodes: int
    successes: int
    success_rate: float
    success_ci95: tuple[float, float]
    mean_steps: float
    teacher_share_of_steps: float
    tokens: dict[str, dict[str, float]]
    """role -> mean prompt / completion / cached (prompt tokens read from the server's cache) tokens per episode."""
    calls_per_step: float
    cost_usd: float
    cost_by_role: dict[str, float] = Field(default_factory=dict)
    """role -> $ per episode (they add up to cost_usd)."""
    flops: float
    wall_s: float
    cost_ratio: float | None = None
    """The teacher's $ per episode ÷ this policy's (how many times cheaper); None for the teacher row itself."""
    flops_ratio: float | None = None
    break_even_episodes: float | None = None
    """Collection cost ÷ $ saved per episode against the teacher; None when nothing is saved."""
    cost_ratio_bound: float | None = None
    """Cascades: the teacher's $ per episode ÷ what this row's student calls alone cost per episode: the ratio it
    would reach if no step had been deferred (the student's samples are paid on every step, deferred or not), so no
    deferral rate can take cost_ratio above it. None for rows without both roles."""
    deferral_by_quarter: list[float | None] = Field(default_factory=list)
    """Cascades: the share of voted steps deferred to the teacher in each quarter of the episodes, in the order they
    ran (an online store should make the last quarter's lower than the first's)."""


class CostTable(BaseModel):
    """Every policy evaluated on the same tasks, priced the same way, against the teacher row."""

    env: str
    split: str
    tasks: int
    settings: PriceSettings
    collection: dict[str, Any]
    rows: list[CostRow]


def _per_episode(trajs: list[Trajectory], settings: PriceSettings) -> tuple[dict[str, Usage], float, float]:
    totals: dict[str, Usage] = {}
    for traj in trajs:
        for role, usage in traj.usage_by_role().items():
            totals[role] = totals.get(role, Usage()) + usage
    dollars = sum(settings.dollars(role, u) for role, u in totals.items()) / len(trajs)
    flops = sum(settings.flops(role, u) for role, u in totals.items()) / len(trajs)
    return totals, dollars, flops


def deferral_by_quarter(trajs: list[Trajectory]) -> list[float | None]:
    """Deferred share of voted steps per quarter of `trajs` (in run order); [] when no step was voted on."""
    if not any(s.cascaded for t in trajs for s in t.steps):
        return []
    quarters = []
    for q in range(4):
        voted = [s for t in trajs[q * len(trajs) // 4:(q + 1) * len(trajs) // 4] for s in t.steps if s.cascaded]
        quarters.append(sum(s.deferred for s in voted) / len(voted) if voted else None)
    return quarters


def cost_row(name: str, trajs: list[Trajectory], settings: PriceSettings) -> CostRow:
    """The row of one evaluation (its trajectories, all on the table's tasks)."""
    if not trajs:
        raise ValueError(f"evaluation {name!r} has no trajectories")
    n = len(trajs)
    totals, dollars, flops = _per_episode(trajs, settings)
    by_role = {role: settings.dollars(role, u) / n for role, u in sorted(totals.items())}
    steps = [s for t in trajs for s in t.steps]
    successes = sum(t.success for t in trajs)
    return CostRow(
        name=name, policy=trajs[0].policy, episodes=n, successes=successes, success_rate=successes / n,
        success_ci95=wilson_interval(successes, n), mean_steps=len(steps) / n,
        teacher_share_of_steps=sum(s.role == "teacher" for s in steps) / len(steps) if steps else 0.0,
        tokens={role: {"prompt": u.prompt_tokens / n, "completion": u.completion_tokens / n,
                       "cached": u.cached_prompt_tokens / n} for role, u in sorted(totals.items())},
        calls_per_step=sum(u.calls for u in totals.values()) / len(steps) if steps else 0.0,
        cost_usd=dollars, cost_by_role=by_role, flops=flops, wall_s=sum(t.duration_s for t in trajs) / n,
        deferral_by_quarter=deferral_by_quarter(trajs),
    )


def cost_table(env: str, split: str, evaluations: dict[str, list[Trajectory]], collected: list[Trajectory],
               settings: PriceSettings, teacher: str = "teacher") -> CostTable:
    """Rows for `evaluations` (name -> trajectories on the same tasks), each against the `teacher` row, and the
    break-even episodes given what collecting `collected` cost."""
    if teacher not in evaluations:
        raise ValueError(f"the table needs the teacher's evaluation {teacher!r}; got {sorted(evaluations)}")
    task_sets = {name: sorted(t.task.id for t in trajs) for name, trajs in evaluations.items()}
    reference = task_sets[teacher]
    differing = [name for name, ids in task_sets.items() if ids != reference]
    if differing:
        raise ValueError(f"evaluations {differing} were not run on the teacher's {len(reference)} tasks; "
                         "compare policies on the same tasks")
    _, collection_usd, collection_flops = _per_episode(collected, settings) if collected else ({}, 0.0, 0.0)
    collection = {"episodes": len(collected), "successes": sum(t.success for t in collected),
                  "cost_usd": collection_usd * len(collected), "flops": collection_flops * len(collected)}
    rows = [cost_row(name, trajs, settings) for name, trajs in evaluations.items()]
    base = next(r for r in rows if r.name == teacher)
    for row in rows:
        if row is base:
            continue
        row.cost_ratio = base.cost_usd / row.cost_usd if row.cost_usd > 0 else None
        row.flops_ratio = base.flops / row.flops if row.flops > 0 else None
        saving = base.cost_usd - row.cost_usd
        row.break_even_episodes = collection["cost_usd"] / saving if saving > 0 else None
        student_usd = row.cost_by_role.get("student", 0.0)
        if "teacher" in row.cost_by_role and student_usd > 0:
            row.cost_ratio_bound = base.cost_usd / student_usd
    return CostTable(env=env, split=split, tasks=len(reference), settings=settings, collection=collection, rows=rows)
