"""What runs inside Ray: an episode worker (one actor = one process with its own sandboxes) and the shared
rate-limit budget. Plain classes; `agentkd.scale.ray_collect` turns them into actors with `ray.remote`."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from agentkd.errors import AgentKDError, ModelError, SandboxUnavailableError
from agentkd.models.rate_limit import BucketLimiter, RateLimit, RateLimitStats, install_rate_limiter
from agentkd.records import Task


class EpisodeWorker:
    """Rebuilds the environment and the policy from their specs and runs episodes with the usual async loop.

    Every episode runs in its own sandboxed Python worker started by this process. `run` returns the
    trajectory as JSON to the driver, the one writer of the run folder."""

    def __init__(self, env_spec: dict[str, Any], policy_spec: dict[str, Any], run: str | None,
                 agent_kwargs: dict[str, Any], limiter: Any = None, limited: list[str] | None = None) -> None:
        from agentkd.agent.loop import CodeActAgent
        from agentkd.env.loading import load_environment
        from agentkd.policies.registry import BuildContext, build_policy
        from agentkd.run.layout import RunLayout
        from agentkd.specs import EnvSpec

        env = load_environment(EnvSpec.model_validate(env_spec))
        policy = build_policy(policy_spec, BuildContext(run=RunLayout(run) if run else None))
        self.agent = CodeActAgent(env, policy, **agent_kwargs)
        for model in limited or []:
            install_rate_limiter(model, RayRateLimiter(limiter, model))

    async def ready(self) -> int:
        """The worker's process id, once it is built."""
        return os.getpid()

    async def run(self, task: dict[str, Any], sample_index: int) -> tuple[str, str]:
        """("ok", trajectory JSON), or ("fatal", message) / ("sandbox", message) for a model error or a sandbox
        that cannot start: errors that would fail every episode alike."""
        try:
            trajectory = await self.agent.arun(Task.model_validate(task), sample_index)
        except ModelError as exc:  # only fatal model errors leave arun
            return ("fatal", str(exc))
        except SandboxUnavailableError as exc:
            return ("sandbox", str(exc))
        except AgentKDError as exc:
            return ("error", f"{type(exc).__name__}: {exc}")
        return ("ok", trajectory.model_dump_json())


class RateLimiterActor:
    """One budget per model, shared by every worker of a job (reservations, so no call blocks the actor)."""

    def __init__(self, limits: dict[str, dict[str, Any]]) -> None:
        self.limiters = {model: BucketLimiter(RateLimit.model_validate(limit)) for model, limit in limits.items()}

    def reserve(self, model: str, tokens: int) -> float:
        return self.limiters[model].reserve(tokens)

    def adjust(self, model: str, delta: int) -> None:
        self.limiters[model].adjust(delta)

    def drain(self, model: str) -> None:
        self.limiters[model].drain()

    def stats(self) -> dict[str, dict[str, Any]]:
        return {model: limiter.stats.model_dump() for model, limiter in self.limiters.items()}


class RayRateLimiter:
    """The `RateLimiter` a worker's ModelClients use: asks the shared actor, then waits here."""

    def __init__(self, actor: Any, model: str) -> None:
        self.actor, self.model = actor, model

    async def acquire(self, tokens: int) -> float:
        wait = await self.actor.reserve.remote(self.model, tokens)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    async def settle(self, estimated: int, actual: int) -> None:
        if actual != estimated:
            await self.actor.adjust.remote(self.model, actual - estimated)

    async def rate_limited(self) -> None:
        await self.actor.drain.remote(self.model)


def stats_of(actor: Any) -> dict[str, RateLimitStats]:
    """The shared budget's totals per model (a blocking call to the actor)."""
    import ray

    return {model: RateLimitStats.model_validate(s) for model, s in ray.get(actor.stats.remote()).items()}
