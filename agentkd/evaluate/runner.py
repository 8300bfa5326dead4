"""Run a policy over a split into RUN/eval/<name>.jsonl and summarise it into RUN/eval/<name>.json."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from agentkd.env.environment import Environment
from agentkd.evaluate.metrics import (
    EvalReport,
    Prices,
    VersusTeacher,
    break_even,
    episode_cost,
    episode_list_cost,
    summarize,
    versus_teacher,
)
from agentkd.evaluate.prices import Price, PriceSettings, resolve_prices, role_models
from agentkd.models.rate_limit import RateLimit
from agentkd.policies.base import Policy
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout
from agentkd.scale import Backend, run_episodes
from agentkd.specs import EnvSpec, PolicySpec


def eval_folder(run: str | Path, name: str) -> RunFolder:
    """RUN/eval/<name>.jsonl with its identity and settings in RUN/eval/settings/<name>.json.

    An evaluation started by agentkd 0.1 kept its settings in RUN/eval/<name>.config.json; they are moved."""
    layout = RunLayout(run)
    settings, legacy = layout.eval_settings(name), layout.legacy_eval_settings(name)
    if legacy.is_file() and not settings.exists():
        settings.parent.mkdir(parents=True, exist_ok=True)
        os.replace(legacy, settings)
    return RunFolder(run, trajectories=layout.eval_trajectories(name), config=settings)


async def evaluate(
    env: Environment,
    policy: Policy,
    tasks: list[Task],
    run: str | Path,
    name: str,
    split: str,
    identity: dict[str, Any],
    concurrency: int = 4,
    prices: PriceSettings | Prices | dict[str, tuple[float, ...]] | None = None,
    agent_kwargs: dict[str, Any] | None = None,
    on_trajectory: Callable[..., None] | None = None,
    backend: Backend | None = None,
    env_spec: EnvSpec | None = None,
    rate_limit: RateLimit | None = None,
    details: dict[str, Any] | None = None,
) -> EvalReport:
    """Evaluate (resuming an interrupted evaluation with the same settings) and write the report.

    `backend` runs the episodes on Ray workers (they rebuild the environment from `env_spec` and the policy
    from its spec); `rate_limit` is a shared budget per API model the policy calls; `details` are recorded beside the
    identity (e.g. the whole policy spec, server addresses included).

    `prices`: a PriceSettings as it is, or the prices stated per role (the rest as `policy_prices` finds them). The
    report holds $ per episode cache-aware and at list prices, each role's price, x cheaper than the teacher (its
    evaluation `teacher` on the same tasks, else the run's collected episodes) and, for a policy distilled from the
    run's collection, the break-even episodes."""
    folder = eval_folder(run, name)
    folder.start(identity=identity, details={"tasks": len(tasks), **(details or {})})
    await run_episodes(env, policy, tasks, folder, concurrency=concurrency, on_trajectory=on_trajectory,
                       agent_kwargs=agent_kwargs, backend=backend, env_spec=env_spec, rate_limit=rate_limit)
    wanted = {t.id for t in tasks}
    trajs = [t for t in folder.iter_trajectories() if t.task.id in wanted and t.sample_index == 0]
    spec = getattr(policy, "spec", None)
    settings = prices if isinstance(prices, PriceSettings) else policy_prices(spec, run, prices)
    report = summarize(trajs, policy=name, split=split, prices=settings)
    models = role_models(spec) if spec is not None else {}
    if name != TEACHER_EVAL and set(models) != {"teacher"}:  # not the teacher itself: what does it save?
        report.versus_teacher = teacher_cost(run, trajs, settings)
        if report.versus_teacher is not None and (spec is None or uses_collection(spec)):
            report.break_even = collection_break_even(run, report.versus_teacher, report.cost_per_episode_usd,
                                                      settings)
    report.details["policy"] = policy.name
    if spec is not None:
        report.details["policy_spec"] = spec.model_dump(mode="json")
    RunLayout(run).eval_report(name).write_text(report.model_dump_json(indent=2))
    return report


TEACHER_EVAL = "teacher"
"""The evaluation other policies are compared with (what `agentkd eval --policy teacher` writes)."""


def policy_prices(spec: PolicySpec | None, run: str | Path, stated: dict[str, Any] | None = None) -> PriceSettings:
    """Each role's price for an evaluation of `spec`: stated, else litellm's cost map for its model, else the
    stated default pair. The teacher's model is the policy's, else the one the run was collected with."""
    models = role_models(spec) if spec is not None else {}
    if "teacher" not in models:
        recorded = RunFolder(run).teacher_spec()
        if recorded is not None:
            models = {**role_models(recorded), **models}
    return resolve_prices(models, {role: Price.model_validate(p) for role, p in (stated or {}).items()})


def uses_collection(spec: PolicySpec) -> bool:
    """Whether a policy was distilled from the run's teacher trajectories (retrieved demonstrations or a trained
    student), so that collecting them is its upfront cost."""
    from agentkd.run.layout import is_trained_student

    data = spec.model_dump(mode="json")

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            if node.get("kind") == "icd" or (isinstance(node.get("model"), str) and is_trained_student(node["model"])):
                return True
            return any(walk(v) for v in node.values())
        return isinstance(node, list) and any(walk(v) for v in node)

    return walk(data)


def teacher_cost(run: str | Path, trajs: list[Trajectory], prices: PriceSettings) -> VersusTeacher | None:
    """The teacher's $ per episode beside these trajectories', priced the same way: its evaluation on the same tasks
    (`eval/teacher`), else the run's collected teacher episodes; None when the run has neither."""
    cost = sum(episode_cost(t, prices) for t in trajs) / len(trajs)
    list_cost = sum(episode_list_cost(t, prices) for t in trajs) / len(trajs)
    wanted = {t.task.id for t in trajs}
    teacher = [t for t in eval_folder(run, TEACHER_EVAL).iter_trajectories() if t.task.id in wanted
               and t.sample_index == 0] if RunLayout(run).eval_trajectories(TEACHER_EVAL).is_file() else []
    if teacher:
        same = "the same" if len(teacher) == len(wanted) else f"{len(teacher)} of the"
        basis = f"eval/{TEACHER_EVAL} on {same} {len(wanted)} tasks"
    else:
        teacher = list(RunFolder(run).iter_trajectories())
        basis = f"the run's {len(teacher)} collected teacher episodes (other tasks)"
    if not teacher:
        return None
    return versus_teacher(cost, list_cost, sum(episode_cost(t, prices) for t in teacher) / len(teacher),
                          sum(episode_list_cost(t, prices) for t in teacher) / len(teacher), basis)


def collection_break_even(run: str | Path, versus: VersusTeacher, policy_cost: float, prices: PriceSettings) -> Any:
    """Upfront cost = collecting the run's teacher trajectories, priced like the rest; the saving per episode is
    against `versus`' teacher cost."""
    upfront = sum(episode_cost(t, prices) for t in RunFolder(run).iter_trajectories())
    return break_even(upfront, versus.teacher_cost_per_episode_usd, policy_cost)
