"""The local backend: run a policy over tasks concurrently in this process (asyncio), appending each finished
trajectory to a run folder. `CollectStats` holds the running totals every backend reports."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from agentkd.agent.loop import CodeActAgent
from agentkd.env.environment import Environment
from agentkd.models.rate_limit import RateLimitStats
from agentkd.policies.base import Policy
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder


@dataclass
class CollectStats:
    """Running totals of a collection (what the progress bar shows)."""

    total: int = 0
    skipped: int = 0
    done: int = 0
    succeeded: int = 0
    errors: int = 0
    step_limit: int = 0
    steps: int = 0
    cost_usd: float = 0.0
    error_messages: list[str] = field(default_factory=list)
    torn_bytes: int = 0
    """Bytes of a torn last line (a crash mid-write) cut from the file on resume and kept aside."""
    rate_limits: dict[str, RateLimitStats] = field(default_factory=dict)
    """Per rate-limited model: requests, tokens, seconds waited and 429s (when the job had a rate limit)."""
    workers_replaced: int = 0
    """Ray backend: workers that died and were replaced."""
    episodes_rerun: int = 0
    """Ray backend: episodes in flight on a dead worker, put back in the queue and run again."""

    def add(self, traj: Trajectory) -> None:
        self.done += 1
        self.succeeded += traj.success
        self.errors += traj.status == "error"
        self.step_limit += traj.status == "step_limit"
        self.steps += len(traj.steps)
        self.cost_usd += traj.usage.cost_usd
        if traj.error and len(self.error_messages) < 5:
            self.error_messages.append(f"{traj.task.id}: {traj.error}")

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.done if self.done else 0.0

    def rate_limit_notes(self, asked: bool) -> list[str]:
        """One line per rate-limited model (requests, tokens, seconds waited in all, 429s answered); when a limit was
        `asked` for but the policy called no API model, a line that says so."""
        notes = []
        if asked and self.done and not self.rate_limits:
            notes.append("note --rpm/--tpm limit API models; this policy called none (local models and the reference "
                         "solver are not limited)")
        for model, s in self.rate_limits.items():
            notes.append(f"rate limit {model}: {s.requests} requests, {s.tokens} tokens, callers waited "
                         f"{s.waited_s:.1f} s in all, {s.rate_limited} answered 429 (retried)")
        return notes


async def gather_or_cancel(runners: list[asyncio.Task[Any]]) -> None:
    """Wait for every runner; when one fails (or the wait is cancelled), cancel the others, let them end, re-raise."""
    try:
        await asyncio.gather(*runners)
    except BaseException:
        for r in runners:
            r.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
        raise


def plan_jobs(tasks: list[Task], samples_per_task: int, finished: set[tuple[str, int]]) -> list[tuple[Task, int]]:
    """Every (task, sample index) not yet in the run folder, in task order."""
    return [(t, k) for t in tasks for k in range(samples_per_task) if (t.id, k) not in finished]


async def collect(
    env: Environment,
    policy: Policy,
    tasks: list[Task],
    run: RunFolder,
    concurrency: int = 8,
    samples_per_task: int = 1,
    on_trajectory: Callable[[Trajectory, CollectStats], None] | None = None,
    agent_kwargs: dict | None = None,
) -> CollectStats:
    """Collect trajectories; resumes by skipping episodes already in `run`. Returns the totals.

    A fatal model error (bad key, unknown model) stops the whole collection and is re-raised;
    episodes in flight at that moment are not written, so a later resume re-runs them.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    torn = run.repair()
    jobs = plan_jobs(tasks, samples_per_task, run.finished_keys())
    stats = CollectStats(total=len(tasks) * samples_per_task, skipped=len(tasks) * samples_per_task - len(jobs),
                         torn_bytes=torn)
    if not jobs:
        return stats
    agent = CodeActAgent(env, policy, **(agent_kwargs or {}))
    queue: asyncio.Queue[tuple[Task, int]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while True:
            try:
                task, sample = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            traj = await agent.arun(task, sample)
            run.append(traj)
            stats.add(traj)
            if on_trajectory is not None:
                on_trajectory(traj, stats)

    try:
        await gather_or_cancel([asyncio.create_task(worker()) for _ in range(min(concurrency, len(jobs)))])
    finally:
        run.close()
    return stats
