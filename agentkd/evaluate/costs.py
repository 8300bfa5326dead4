"""What a policy costs against the teacher: $ under stated prices (cache-aware, and at list prices beside it), FLOPs,
x cheaper and break-even.

Tokens are counted once per model call: a student call that returns n samples counts its prompt once and
its n completions; a deferred step adds the teacher's call. Cache-aware $ bill the prompt tokens a server read from
its cache at the cache-read price (`agentkd.evaluate.prices`); list $ bill every prompt token at list price. FLOPs
use the usual estimate 2 * params * tokens.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agentkd.evaluate.metrics import wilson_interval
from agentkd.evaluate.prices import PAPER_PRICES, Price, PriceSettings
from agentkd.records import Trajectory, Usage

__all__ = ["PAPER_PRICES", "CostRow", "CostTable", "Price", "PriceSettings", "cost_row", "cost_table",
           "deferral_by_quarter"]

ROLES = ("teacher", "student")


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
    """Cache-aware $ per episode."""
    list_cost_usd: float = 0.0
    """$ per episode with every prompt token at list price."""
    cost_by_role: dict[str, float] = Field(default_factory=dict)
    """role -> cache-aware $ per episode (they add up to cost_usd)."""
    flops: float
    wall_s: float
    cost_ratio: float | None = None
    """The teacher's $ per episode ÷ this policy's (how many times cheaper, cache-aware); None for the teacher row
    itself."""
    list_cost_ratio: float | None = None
    """The same at list prices."""
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


def _per_episode(trajs: list[Trajectory], settings: PriceSettings) -> tuple[dict[str, Usage], float, float, float]:
    """(usage by role summed over `trajs`, cache-aware $, list $ and FLOPs per episode)."""
    totals: dict[str, Usage] = {}
    for traj in trajs:
        for role, usage in traj.usage_by_role().items():
            totals[role] = totals.get(role, Usage()) + usage
    dollars = sum(settings.dollars(role, u) for role, u in totals.items()) / len(trajs)
    at_list = sum(settings.list_dollars(role, u) for role, u in totals.items()) / len(trajs)
    flops = sum(settings.flops(role, u) for role, u in totals.items()) / len(trajs)
    return totals, dollars, at_list, flops


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
    totals, dollars, at_list, flops = _per_episode(trajs, settings)
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
        cost_usd=dollars, list_cost_usd=at_list, cost_by_role=by_role, flops=flops,
        wall_s=sum(t.duration_s for t in trajs) / n,
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
    _, collection_usd, _, collection_flops = _per_episode(collected, settings) if collected else ({}, 0.0, 0.0, 0.0)
    collection = {"episodes": len(collected), "successes": sum(t.success for t in collected),
                  "cost_usd": collection_usd * len(collected), "flops": collection_flops * len(collected)}
    rows = [cost_row(name, trajs, settings) for name, trajs in evaluations.items()]
    base = next(r for r in rows if r.name == teacher)
    for row in rows:
        if row is base:
            continue
        row.cost_ratio = base.cost_usd / row.cost_usd if row.cost_usd > 0 else None
        row.list_cost_ratio = base.list_cost_usd / row.list_cost_usd if row.list_cost_usd > 0 else None
        row.flops_ratio = base.flops / row.flops if row.flops > 0 else None
        saving = base.cost_usd - row.cost_usd
        row.break_even_episodes = collection["cost_usd"] / saving if saving > 0 else None
        student_usd = row.cost_by_role.get("student", 0.0)
        if "teacher" in row.cost_by_role and student_usd > 0:
            row.cost_ratio_bound = base.cost_usd / student_usd
    return CostTable(env=env, split=split, tasks=len(reference), settings=settings, collection=collection, rows=rows)
