"""Benchmark the Ray backend of `collect` against the asyncio backend, same tasks, same teacher.

The teacher is benchmarks/fake_openai_server.py (a labelled stand-in for a paid API: it answers every request
with the factqa reference solver's next step after sleeping --delay seconds), in its own process, reached by
litellm over real HTTP as `hosted_vllm/reference-stub`. A local Ray instance is started on this machine
(`ray.init(num_cpus=--ray-cpus)`). In one run this prints:

- throughput (episodes/s) of the asyncio backend at concurrency 16 x W and of W Ray workers x concurrency 16,
  W in --workers; for Ray both the wall time of the whole job (starting the workers included) and the
  steady rate from the moment every worker was up;
- the Ray path's overhead per episode: --overhead-episodes episodes one at a time (1 worker, concurrency 1)
  against the asyncio backend at concurrency 1, per episode, workers' start-up excluded;
- a kill -9 of one Ray worker mid-run (2 workers x concurrency 16, --kill-episodes episodes): the final count
  of distinct trajectories against the tasks asked for, and duplicates.

    python benchmarks/bench_scale.py [--episodes 128] [--delay 0.2] [--workers 1,2,4] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeOpenAIServerProcess  # noqa: E402

from agentkd.collect import collect  # noqa: E402
from agentkd.env.loading import load_environment  # noqa: E402
from agentkd.policies.registry import build_policy, teacher_spec  # noqa: E402
from agentkd.run import RunFolder  # noqa: E402
from agentkd.scale import Backend  # noqa: E402
from agentkd.scale.ray_collect import collect_on_ray  # noqa: E402
from agentkd.specs import EnvSpec  # noqa: E402


def fresh_run() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-scale-")) / "run"


def written_keys(run: Path) -> list[tuple[str, int]]:
    lines = (run / "trajectories.jsonl").read_text().splitlines()
    return [(r["task"]["id"], r["sample_index"]) for r in map(json.loads, lines)]


def local_run(env, spec, tasks, concurrency: int) -> tuple[float, int]:
    """Seconds and successes of the asyncio backend."""
    run = fresh_run()
    try:
        policy = build_policy(spec)
        started = time.perf_counter()
        stats = asyncio.run(collect(env, policy, tasks, RunFolder(run), concurrency=concurrency))
        return time.perf_counter() - started, stats.succeeded
    finally:
        shutil.rmtree(run.parent, ignore_errors=True)


def ray_run(spec, tasks, workers: int, concurrency: int, kill_after: int | None = None) -> dict:
    """Wall seconds, seconds from all workers up to the end, successes; with kill_after, kill -9 one worker
    once that many trajectories are written and report distinct and duplicate keys."""
    run = fresh_run()
    marks: dict[str, float] = {}
    pids: list[int] = []
    killed: list[int] = []

    def up(worker_pids: list[int]) -> None:
        marks["up"] = time.perf_counter()
        pids.extend(worker_pids)

    def maybe_kill(_traj, stats) -> None:
        if kill_after is not None and stats.done >= kill_after and not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    try:
        started = time.perf_counter()
        stats = asyncio.run(collect_on_ray(EnvSpec(target="factqa"), spec, tasks, RunFolder(run),
                                           Backend(kind="ray", workers=workers), concurrency=concurrency,
                                           on_workers=up, on_trajectory=maybe_kill))
        ended = time.perf_counter()
        keys = written_keys(run)
        return {"wall": ended - started, "steady": ended - marks["up"], "succeeded": stats.succeeded,
                "distinct": len(set(keys)), "duplicates": sum(c - 1 for c in Counter(keys).values()),
                "replaced": stats.workers_replaced, "rerun": stats.episodes_rerun, "killed": bool(killed)}
    finally:
        shutil.rmtree(run.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=128, help="episodes per throughput measurement")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the endpoint sleeps per request")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=16, help="episodes at once per Ray worker")
    parser.add_argument("--overhead-episodes", type=int, default=16)
    parser.add_argument("--kill-episodes", type=int, default=96)
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()

    import ray

    env = load_environment("factqa")
    levels = [int(x) for x in args.workers.split(",")]
    tasks = env.tasks("train", max(args.episodes, args.kill_episodes, args.overhead_episodes))
    with FakeOpenAIServerProcess("factqa", delay_s=args.delay) as server:
        spec = teacher_spec("hosted_vllm/reference-stub", api_base=server.api_base)
        ray.init(address="local", num_cpus=args.ray_cpus, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
        try:
            local_run(env, spec, tasks[:4], 4)  # warm-up: imports, connections
            print(f"model delay {args.delay * 1000:.0f} ms per request; {os.cpu_count()} CPUs; "
                  f"local Ray instance with {args.ray_cpus} CPUs")
            for w in levels:
                slots = w * args.concurrency
                local_s, local_ok = local_run(env, spec, tasks[: args.episodes], slots)
                r = ray_run(spec, tasks[: args.episodes], w, args.concurrency)
                local_rate, ray_rate, steady_rate = (args.episodes / local_s, args.episodes / r["wall"],
                                                     args.episodes / r["steady"])
                print(f"{args.episodes} episodes, {slots:3d} at once | asyncio {local_rate:6.1f} ep/s "
                      f"({local_ok} ok) | Ray {w} x {args.concurrency}: {ray_rate:6.1f} ep/s with start-up "
                      f"({r['wall'] - r['steady']:.1f} s), {steady_rate:6.1f} ep/s once up ({r['succeeded']} ok) | "
                      f"Ray steady / asyncio {steady_rate / local_rate:.2f}x")
            n = args.overhead_episodes
            local_s, _ = local_run(env, spec, tasks[:n], 1)
            r = ray_run(spec, tasks[:n], 1, 1)
            print(f"one at a time, {n} episodes: asyncio {local_s / n * 1000:.1f} ms/episode, Ray (1 worker, once up) "
                  f"{r['steady'] / n * 1000:.1f} ms/episode: Ray overhead {(r['steady'] - local_s) / n * 1000:.1f} "
                  f"ms per episode")
            k = args.kill_episodes
            r = ray_run(spec, tasks[:k], 2, args.concurrency, kill_after=k // 4)
            print(f"kill -9 of one of 2 workers after {k // 4} of {k} episodes: killed={r['killed']}, "
                  f"{r['distinct']} distinct trajectories for {k} tasks asked, {r['duplicates']} duplicates, "
                  f"{r['replaced']} worker replaced, {r['rerun']} episodes in flight re-run, "
                  f"{r['succeeded']} succeeded")
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
