"""The Ray driver: shard a job's episodes over Ray workers and write what comes back, alone, to the run folder.

Each worker (an `EpisodeWorker` actor) rebuilds the environment and policy from their specs and runs up to
`concurrency` episodes at once with the existing async loop. The driver keeps that many episodes in flight
per worker, appends each trajectory as it arrives (one line, flushed, as `collect` does) and skips a key
already written, so nothing is duplicated. When a worker dies (kill -9, a lost node), its episodes in flight
are put back in the queue and run again on a fresh worker; only those are lost.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, Callable

from agentkd.errors import ModelError, SandboxStartError
from agentkd.models.rate_limit import RateLimit
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder
from agentkd.scale.backend import Backend, BackendError
from agentkd.scale.local import CollectStats, gather_or_cancel, plan_jobs
from agentkd.scale.ray_cluster import check_capacity, connect, import_ray
from agentkd.scale.ray_workers import EpisodeWorker, RateLimiterActor, stats_of
from agentkd.specs import EnvSpec, PolicySpec


@dataclass
class _Worker:
    handle: Any
    generation: int
    pid: int


class WorkerPool:
    """The job's workers: started together, replaced one at a time when they die, killed at the end."""

    def __init__(self, ray: Any, backend: Backend, args: tuple[Any, ...]) -> None:
        self.ray, self.backend, self.args = ray, backend, args
        self.actor_class = ray.remote(EpisodeWorker)
        self.workers: list[_Worker] = []
        self.restarts = 0
        self._locks: list[asyncio.Lock] = []
        self._handles: list[Any] = []
        """Every actor this pool created (killed at the end, whatever state it reached)."""

    async def _start_one(self, generation: int) -> _Worker:
        handle = self.actor_class.options(num_cpus=self.backend.cpus_per_worker, max_restarts=0).remote(*self.args)
        self._handles.append(handle)
        try:
            pid = await asyncio.wait_for(asyncio.wrap_future(handle.ready.remote().future()),
                                         self.backend.start_timeout_s)
        except asyncio.TimeoutError:
            raise BackendError(f"a Ray worker did not start within {self.backend.start_timeout_s:g} s: the cluster "
                               "has no room for it (other jobs hold its CPUs?) or the node is overloaded; pass "
                               "fewer --workers or wait for the cluster") from None
        except self.ray.exceptions.RayError as exc:
            raise BackendError(f"a Ray worker could not build the environment and policy: {_cause(exc)}. Every "
                               "node needs agentkd, the environment's module or file at the same path, and the "
                               "run folder's files the policy reads (its index, a trained student)") from exc
        return _Worker(handle, generation, pid)

    async def start(self, n: int) -> None:
        self.workers = list(await asyncio.gather(*(self._start_one(0) for _ in range(n))))
        self._locks = [asyncio.Lock() for _ in range(n)]

    async def replace(self, index: int, dead: _Worker, error: BaseException) -> None:
        """Replace worker `index` if it is still the one that died (other slots may have replaced it already)."""
        async with self._locks[index]:
            if self.workers[index].generation != dead.generation:
                return
            if self.restarts >= self.backend.max_restarts * len(self.workers):
                deaths = self.restarts + 1
                raise BackendError(f"Ray workers died {deaths} time{'s' * (deaths > 1)} (last: {_cause(error)}); "
                                   "finished trajectories are kept, re-run to resume")
            self.restarts += 1
            self.ray.kill(dead.handle)
            self.workers[index] = await self._start_one(dead.generation + 1)

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def close(self) -> None:
        for handle in self._handles:
            try:
                self.ray.kill(handle)
            except Exception:  # noqa: BLE001 - already gone
                pass


async def collect_on_ray(
    env_spec: EnvSpec,
    policy_spec: PolicySpec,
    tasks: list[Task],
    run: RunFolder,
    backend: Backend,
    concurrency: int = 8,
    samples_per_task: int = 1,
    on_trajectory: Callable[[Trajectory, CollectStats], None] | None = None,
    agent_kwargs: dict[str, Any] | None = None,
    rate_limits: dict[str, RateLimit] | None = None,
    max_attempts: int = 3,
    on_workers: Callable[[list[int]], None] | None = None,
) -> CollectStats:
    """`collect` on Ray workers: same resume rules, same totals, same callback. `run.path` is given to the
    workers for what the policy reads (its demonstration store, a trained student); only this process writes.

    An episode whose worker died `max_attempts` times is recorded as an error trajectory (never retried
    forever); `on_workers` receives the workers' process ids once they are up (benchmarks kill one)."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    torn = run.repair()
    written = run.finished_keys()
    jobs = plan_jobs(tasks, samples_per_task, written)
    stats = CollectStats(total=len(tasks) * samples_per_task, skipped=len(tasks) * samples_per_task - len(jobs),
                         torn_bytes=torn)
    if not jobs:
        return stats
    ray = import_ray()
    started = connect(backend)
    pool: WorkerPool | None = None
    limiter = None
    try:
        n_workers = min(backend.workers, math.ceil(len(jobs) / concurrency))
        check_capacity(backend, n_workers)
        if rate_limits:
            limiter = ray.remote(RateLimiterActor).options(num_cpus=0).remote(
                {model: limit.model_dump() for model, limit in rate_limits.items()})
        args = (env_spec.model_dump(mode="json"), policy_spec.model_dump(mode="json"), str(run.path),
                dict(agent_kwargs or {}), limiter, sorted(rate_limits or {}))
        pool = WorkerPool(ray, backend, args)
        await pool.start(n_workers)
        if on_workers is not None:
            on_workers(pool.pids())
        try:
            await _drive(ray, pool, jobs, run, stats, concurrency, written, on_trajectory, max_attempts, policy_spec)
        finally:
            stats.workers_replaced = pool.restarts
        if limiter is not None:
            stats.rate_limits = stats_of(limiter)
    finally:
        run.close()
        if pool is not None:
            pool.close()
        if limiter is not None:
            ray.kill(limiter)
        if started:
            ray.shutdown()
    return stats


async def _drive(ray: Any, pool: WorkerPool, jobs: list[tuple[Task, int]], run: RunFolder, stats: CollectStats,
                 concurrency: int, written: set[tuple[str, int]],
                 on_trajectory: Callable[[Trajectory, CollectStats], None] | None, max_attempts: int,
                 policy_spec: PolicySpec) -> None:
    queue: asyncio.Queue[tuple[Task, int] | None] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    slots = len(pool.workers) * concurrency
    left = len(jobs)
    attempts: dict[tuple[str, int], int] = {}

    def record(traj: Trajectory) -> None:
        nonlocal left
        if traj.key not in written:  # the one writer: each key once, whatever came back twice
            written.add(traj.key)
            run.append(traj)
            stats.add(traj)
            if on_trajectory is not None:
                on_trajectory(traj, stats)
        left -= 1
        if left == 0:
            for _ in range(slots):
                queue.put_nowait(None)

    async def slot(index: int) -> None:
        """One episode at a time on worker `index` (each worker has `concurrency` slots)."""
        while (job := await queue.get()) is not None:
            task, sample = job
            worker = pool.workers[index]
            try:
                kind, payload = await worker.handle.run.remote(task.model_dump(mode="json"), sample)
            except ray.exceptions.RayActorError as exc:  # the worker died: this episode runs again elsewhere
                key = (task.id, sample)
                attempts[key] = attempts.get(key, 0) + 1
                if attempts[key] >= max_attempts:
                    record(_lost(task, sample, policy_spec, attempts[key], exc))
                else:
                    stats.episodes_rerun += 1
                    queue.put_nowait(job)
                if left > 0:  # a replacement only when work remains
                    await pool.replace(index, worker, exc)
                continue
            except ray.exceptions.RayTaskError as exc:
                raise BackendError(f"a Ray worker failed on task {task.id!r}: {_cause(exc)}") from exc
            if kind == "fatal":
                raise ModelError(payload, fatal=True)
            if kind == "sandbox":
                raise SandboxStartError(f"on a Ray worker: {payload}", payload)
            if kind == "error":
                raise BackendError(f"a Ray worker failed on task {task.id!r}: {payload}")
            record(Trajectory.model_validate_json(payload))

    await gather_or_cancel([asyncio.create_task(slot(i // concurrency)) for i in range(slots)])


def _lost(task: Task, sample: int, spec: PolicySpec, attempts: int, exc: BaseException) -> Trajectory:
    """The record of an episode whose worker died every time it ran it (never retried forever)."""
    return Trajectory(task=task, sample_index=sample, policy=f"{spec.kind}", policy_spec=spec, status="error",
                      error=f"BackendError: the Ray worker running this episode died {attempts} times "
                            f"(last: {_cause(exc)})")


def _cause(exc: BaseException) -> str:
    text = str(getattr(exc, "cause", None) or exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]
