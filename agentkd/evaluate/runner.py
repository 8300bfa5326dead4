"""Run a policy over a split into RUN/eval/<name>.jsonl and summarise it into RUN/eval/<name>.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from agentkd.env.environment import Environment
from agentkd.evaluate.metrics import EvalReport, Prices, break_even, episode_cost, summarize
from agentkd.models.rate_limit import RateLimit
from agentkd.policies.base import Policy
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout
from agentkd.scale import Backend, run_episodes
from agentkd.specs import EnvSpec


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
    prices: Prices | None = None,
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
    identity (e.g. the whole policy spec, server addresses included)."""
    folder = eval_folder(run, name)
    folder.start(identity=identity, details={"tasks": len(tasks), **(details or {})})
    await run_episodes(env, policy, tasks, folder, concurrency=concurrency, on_trajectory=on_trajectory,
                       agent_kwargs=agent_kwargs, backend=backend, env_spec=env_spec, rate_limit=rate_limit)
    wanted = {t.id for t in tasks}
    trajs = [t for t in folder.iter_trajectories() if t.task.id in wanted and t.sample_index == 0]
    report = summarize(trajs, policy=name, split=split, prices=prices)
    if report.deferral_rate is not None:  # a cascade: what did distillation save?
        report.break_even = cascade_break_even(run, report.cost_per_episode_usd, prices)
    report.details["policy"] = policy.name
    spec = getattr(policy, "spec", None)
    if spec is not None:
        report.details["policy_spec"] = spec.model_dump(mode="json")
    RunLayout(run).eval_report(name).write_text(report.model_dump_json(indent=2))
    return report


def cascade_break_even(run: str | Path, cascade_cost: float, prices: Prices | None) -> Any:
    """Upfront cost = the run's teacher trajectories; teacher cost per episode from eval/teacher.json
    when it exists, else the mean over the run's teacher trajectories."""
    collected: list[Trajectory] = list(RunFolder(run).iter_trajectories())
    upfront = sum(episode_cost(t, prices) for t in collected)
    teacher_report = RunLayout(run).eval_report("teacher")
    if teacher_report.is_file():
        teacher_cost = float(json.loads(teacher_report.read_text())["cost_per_episode_usd"])
    else:
        teacher_cost = upfront / len(collected) if collected else 0.0
    return break_even(upfront, teacher_cost, cascade_cost)
