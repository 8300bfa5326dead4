"""Targeted collection: choose the train tasks where the teacher's help is worth the most.

An evaluation of the student on train-side tasks (a *probe*: train tasks the run has not collected) says where
it failed or deferred to the teacher. Each probed task gets a score: 1 when the episode failed, plus the share of
its steps the cascade deferred. The teacher is then sent, within a budget of episodes,

1. to the scored tasks themselves, highest score first;
2. to *nearby* tasks: uncollected tasks of the same group (the task's `template`, else its `kind`), each group
   drawn in proportion to the scores of its probed tasks (D'Hondt: the group with the largest
   weight / (drawn + 1) draws next).

When nothing scored (the student solved every probed task) or no group is known, the rest of the budget is drawn
uniformly from the uncollected tasks in split order. Evaluations on the test split are refused: collecting the
teacher on the tasks it failed would train the student on its own test set.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, Field

from agentkd.errors import AgentKDError
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout

TEST_SPLIT = "test"
GroupBy = Literal["template", "kind", "none"]


class TargetingError(AgentKDError):
    """Targeted collection cannot choose its tasks (no such evaluation, an evaluation on the test split, ...)."""


class TargetChoice(BaseModel):
    """One task the teacher is sent to, and why."""

    task_id: str
    reason: Literal["failed", "deferred", "nearby", "uniform"]
    group: str | None = None
    score: float = 0.0
    """The probed episode's score (1 if it failed + share of steps deferred); 0 for nearby and uniform tasks."""


class TargetPlan(BaseModel):
    """The tasks targeted collection chose from one evaluation (RUN/targets/<eval>.json)."""

    eval: str
    budget: int = Field(ge=1)
    group_by: GroupBy = "template"
    probed: int = 0
    failed: int = 0
    deferred: int = 0
    """Probed episodes the student solved with at least one step deferred to the teacher."""
    group_weights: dict[str, float] = Field(default_factory=dict)
    chosen: list[TargetChoice] = Field(default_factory=list)
    created_at: str = ""

    @property
    def task_ids(self) -> list[str]:
        return [c.task_id for c in self.chosen]

    def counts(self) -> dict[str, int]:
        """Chosen tasks by reason."""
        out: dict[str, int] = {}
        for choice in self.chosen:
            out[choice.reason] = out.get(choice.reason, 0) + 1
        return out

    def summary(self, path: Path) -> str:
        """One line: what the probe found and which tasks the teacher is sent to (the plan kept in `path`)."""
        chosen = ", ".join(f"{n} {reason}" for reason, n in self.counts().items()) or "none"
        groups = ", ".join(f"{g} {w:g}" for g, w in list(self.group_weights.items())[:6])
        return (f"targets from {self.eval!r}: {self.failed} of {self.probed} probed episodes failed, {self.deferred} "
                f"more deferred; {len(self.chosen)} tasks chosen within budget {self.budget} ({chosen})"
                + (f"; weight by group: {groups}" if groups else "") + f"; kept in {path}")


def task_group(task: Task, group_by: GroupBy = "template") -> str | None:
    """The group a task belongs to for "nearby": its metadata's template (else kind), or kind only; None if none."""
    if group_by == "none":
        return None
    keys = ("template", "kind") if group_by == "template" else ("kind",)
    for key in keys:
        value = task.metadata.get(key)
        if value is not None:
            return str(value)
    return None


def episode_score(traj: Trajectory) -> float:
    """How much an episode says the student needs help: 1 if it failed, plus the share of its steps deferred."""
    steps = len(traj.steps)
    deferred = sum(1 for s in traj.steps if s.deferred) / steps if steps else 0.0
    return (0.0 if traj.success else 1.0) + deferred


def select_targets(
    probed: Iterable[Trajectory],
    candidates: list[Task],
    budget: int,
    eval_name: str = "probe",
    group_by: GroupBy = "template",
    exclude: Iterable[str] = (),
) -> TargetPlan:
    """Choose at most `budget` tasks: scored probed tasks first, then nearby `candidates` of their groups, then
    uniform `candidates`. `exclude` (the run's collected task ids) is never chosen; nor is any test-split task."""
    if budget < 1:
        raise TargetingError(f"the budget must be at least 1 teacher episode, got {budget}")
    excluded = set(exclude)
    scores: dict[str, list[float]] = {}
    tasks: dict[str, Task] = {}
    deferred_episodes = failed_episodes = episodes = 0
    for traj in probed:
        _refuse_test(traj.task, eval_name)
        episodes += 1
        failed_episodes += not traj.success
        deferred_episodes += bool(traj.success and any(s.deferred for s in traj.steps))
        scores.setdefault(traj.task.id, []).append(episode_score(traj))
        tasks.setdefault(traj.task.id, traj.task)
    mean = {tid: sum(v) / len(v) for tid, v in scores.items()}
    scored = sorted((tid for tid, s in mean.items() if s > 0), key=lambda t: -mean[t])  # stable: probe order on ties
    plan = TargetPlan(eval=eval_name, budget=budget, group_by=group_by, probed=episodes, failed=failed_episodes,
                      deferred=deferred_episodes, created_at=datetime.now(timezone.utc).isoformat())
    chosen: set[str] = set()

    def take(task: Task, reason: str, score: float = 0.0) -> None:
        chosen.add(task.id)
        plan.chosen.append(TargetChoice(task_id=task.id, reason=reason, group=task_group(task, group_by),  # type: ignore[arg-type]
                                        score=round(score, 4)))

    for tid in scored:
        if len(chosen) >= budget:
            break
        if tid not in excluded:
            take(tasks[tid], "failed" if mean[tid] >= 1 else "deferred", mean[tid])
    weights: dict[str, float] = {}
    for tid in scored:
        group = task_group(tasks[tid], group_by)
        if group is not None:
            weights[group] = weights.get(group, 0.0) + mean[tid]
    plan.group_weights = {g: round(w, 4) for g, w in sorted(weights.items(), key=lambda kv: -kv[1])}
    free = [t for t in candidates if t.id not in excluded and t.id not in chosen]
    for task in free:
        _refuse_test(task, eval_name)
    pools: dict[str, list[Task]] = {}
    for task in free:
        group = task_group(task, group_by)
        if group in weights:
            pools.setdefault(group, []).append(task)
    drawn = {g: 0 for g in pools}
    while len(chosen) < budget and any(pools.values()):
        group = max((g for g in pools if pools[g]), key=lambda g: weights[g] / (drawn[g] + 1))
        take(pools[group].pop(0), "nearby")
        drawn[group] += 1
    for task in free:
        if len(chosen) >= budget:
            break
        if task.id not in chosen:
            take(task, "uniform")
    return plan


def _refuse_test(task: Task, eval_name: str) -> None:
    if task.split == TEST_SPLIT:
        raise TargetingError(
            f"evaluation {eval_name!r} holds test-split task {task.id!r}: collecting the teacher on tasks chosen from "
            "the test split would train the student on its own test set. Probe the student on train tasks the run "
            "has not collected instead (`agentkd eval --split train --unseen --name probe ...`) and target that")


def probe_trajectories(layout: RunLayout, eval_name: str, split: str) -> list[Trajectory]:
    """The episodes of RUN/eval/<eval_name>.jsonl, after checking the evaluation ran on `split` and not on test."""
    recorded = layout.eval_split(eval_name)
    if recorded == TEST_SPLIT:
        raise TargetingError(
            f"evaluation {eval_name!r} in {layout.root} ran on the test split: collecting the teacher on the tasks "
            "it failed would train the student on its own test set. Probe on train tasks the run has not collected "
            f"(`agentkd eval --run {layout.root} --split train --unseen --name probe ...`) and pass --on-failures probe")
    if not layout.eval_trajectories(eval_name).is_file():
        known = ", ".join(sorted(p.stem for p in layout.eval_dir.glob("*.jsonl"))) if layout.eval_dir.is_dir() else ""
        raise TargetingError(f"no evaluation named {eval_name!r} in {layout.eval_dir} (known: {known or 'none'}); "
                             f"run `agentkd eval --run {layout.root} --split {split} --unseen --name {eval_name} ...` first")
    if recorded is not None and recorded != split:
        raise TargetingError(f"evaluation {eval_name!r} ran on the {recorded!r} split but this collection runs on "
                             f"{split!r}: target an evaluation on the collection's split")
    folder = RunFolder(layout.root, trajectories=layout.eval_trajectories(eval_name),
                       config=layout.eval_settings(eval_name))
    trajectories = [t for t in folder.iter_trajectories()]
    if not trajectories:
        raise TargetingError(f"evaluation {eval_name!r} in {layout.root} has no episodes yet; finish it first")
    return trajectories


def load_plan(path: Path) -> TargetPlan | None:
    if not path.is_file():
        return None
    try:
        return TargetPlan.model_validate_json(path.read_text())
    except ValueError as exc:
        raise TargetingError(f"{path} is not a valid target plan ({exc}); delete it to choose the tasks again") from exc


def write_plan(path: Path, plan: TargetPlan) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(plan.model_dump(mode="json"), indent=2))
    os.replace(tmp, path)


def targeted_tasks(folder: RunFolder, all_tasks: list[Task], split: str, eval_name: str, budget: int,
                   group_by: GroupBy = "template") -> tuple[list[Task], TargetPlan]:
    """The tasks of a targeted collection into `folder`: chosen once from the evaluation and kept in
    RUN/targets/<eval>.json, so a resumed collection runs the same tasks."""
    layout = folder.layout
    path = layout.targets(eval_name)
    plan = load_plan(path)
    if plan is not None and (plan.budget != budget or plan.group_by != group_by):
        raise TargetingError(f"{path} chose tasks with budget {plan.budget} and grouping {plan.group_by!r}; re-run "
                             f"with --budget {plan.budget} to resume it, or delete that file to choose again")
    if plan is None:
        probed = probe_trajectories(layout, eval_name, split)
        probed_ids = {t.task.id for t in probed}
        collected = {t.task.id for t in folder.iter_trajectories()}
        candidates = [t for t in all_tasks if t.id not in probed_ids]
        plan = select_targets(probed, candidates, budget, eval_name, group_by, exclude=collected)
        write_plan(path, plan)
    by_id = {t.id: t for t in all_tasks}
    missing = [tid for tid in plan.task_ids if tid not in by_id]
    if missing:
        raise TargetingError(f"{path} names tasks the {split!r} split does not have ({missing[:3]}); the environment "
                             "changed: delete that file to choose again")
    return [by_id[tid] for tid in plan.task_ids], plan
