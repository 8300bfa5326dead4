"""Run a job's episodes on its backend: `collect` in this process, or `collect_on_ray` across Ray workers,
with the job's rate limit applied to every API model its policy calls."""

from __future__ import annotations

from typing import Any, Callable

from agentkd.env.environment import Environment
from agentkd.models.client import canonical_model, is_local
from agentkd.models.rate_limit import LocalRateLimiter, RateLimit, rate_limited
from agentkd.policies.base import Policy
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import TRAINED_NAMES
from agentkd.scale.backend import Backend, BackendError
from agentkd.scale.local import CollectStats, collect
from agentkd.specs import EnvSpec, PolicySpec


def limited_models(spec: PolicySpec | None) -> list[str]:
    """The API models a policy calls (every `model` in its spec, nested specs included), as ModelClient names
    them; local models (`hf/`, `gguf/`, a run's trained student) are left out: they have no provider limit."""
    if spec is None:
        return []
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            model = value.get("model")
            if isinstance(model, str) and model not in TRAINED_NAMES and not is_local(model):
                found.append(canonical_model(model))
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(spec.model_dump(mode="json")["settings"])
    return sorted(set(found))


async def run_episodes(
    env: Environment,
    policy: Policy,
    tasks: list[Task],
    folder: RunFolder,
    *,
    concurrency: int = 8,
    samples_per_task: int = 1,
    on_trajectory: Callable[[Trajectory, CollectStats], None] | None = None,
    agent_kwargs: dict[str, Any] | None = None,
    backend: Backend | None = None,
    env_spec: EnvSpec | None = None,
    rate_limit: RateLimit | None = None,
) -> CollectStats:
    """Run every episode of `tasks` not yet in `folder` (resuming) on `backend` (default: this process).

    The Ray backend rebuilds the environment and the policy from `env_spec` and the policy's `spec` in each
    worker; `rate_limit` is one budget per API model shared by all the job's episodes (and workers). `folder` is
    closed (its writer lock released) when this returns or raises; when it raises before any episode was written,
    the record `folder.start` created is removed (`RunFolder.discard_if_unused`)."""
    try:
        backend = backend or Backend()
        spec: PolicySpec | None = getattr(policy, "spec", None)
        limits = {model: rate_limit for model in limited_models(spec)} if rate_limit is not None else {}
        if backend.kind == "ray":
            if env_spec is None or spec is None:
                raise BackendError("the Ray backend rebuilds the environment and the policy from their specs; "
                                   "give the environment's EnvSpec and a policy built by build_policy "
                                   f"(got {policy.name!r})")
            from agentkd.scale.ray_collect import collect_on_ray

            return await collect_on_ray(env_spec, spec, tasks, folder, backend, concurrency=concurrency,
                                        samples_per_task=samples_per_task, on_trajectory=on_trajectory,
                                        agent_kwargs=agent_kwargs, rate_limits=limits)
        limiters = {model: LocalRateLimiter(limit) for model, limit in limits.items()}
        with rate_limited(limiters):  # type: ignore[arg-type]
            stats = await collect(env, policy, tasks, folder, concurrency=concurrency, samples_per_task=samples_per_task,
                                  on_trajectory=on_trajectory, agent_kwargs=agent_kwargs)
        stats.rate_limits = {model: limiter.stats for model, limiter in limiters.items()}
        return stats
    except BaseException:  # an error or Ctrl-C before the first episode leaves no record of a job that never ran
        folder.close()
        folder.discard_if_unused()
        raise
    finally:
        folder.close()  # the writer lock goes on every path: nothing to run, an error, Ctrl-C
