"""Benchmark `collect` against a local OpenAI-compatible endpoint with a fixed model latency.

The endpoint (benchmarks/fake_openai_server.py, a labelled stand-in for a paid API or a vLLM server,
reached as `hosted_vllm/reference-stub`) answers every
request with the factqa reference solver's next step after sleeping --delay seconds, in a
separate process. litellm reaches it over real HTTP. In one run this prints:

- the speed-up of concurrency 8/32/64 over sequential collection (goal: >= 25x at 32),
  as a ratio of throughput (steps per second): sequential runs --episodes episodes, level L
  runs --waves x L episodes, so every level is measured with its slots kept busy;
- the framework's own overhead per step at concurrency 1: wall time per step minus the raw
  HTTP round trip (httpx straight to the same endpoint, same delay, measured in this run)
  (goal: <= 5 ms). Wall time per step minus the bare delay is printed too.

    python benchmarks/bench_collect.py [--episodes 32] [--delay 0.2] [--waves 4]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeOpenAIServerProcess  # noqa: E402

from agentkd import LLMPolicy, ModelClient, load_environment  # noqa: E402
from agentkd.collect import collect
from agentkd.run import RunFolder  # noqa: E402


async def timed_collect(env, policy, tasks, concurrency: int) -> tuple[float, int, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    try:
        started = time.perf_counter()
        stats = await collect(env, policy, tasks, RunFolder(folder), concurrency=concurrency)
        return time.perf_counter() - started, stats.steps, stats.success_rate
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _probe_messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "x" * 1500}, {"role": "user", "content": prompt}]


async def raw_round_trip(api_base: str, prompt: str, calls: int = 20) -> float:
    """Mean seconds of a bare httpx POST to the endpoint: the floor no framework can beat."""
    import httpx

    body = {"model": "reference-stub", "messages": _probe_messages(prompt)}
    async with httpx.AsyncClient() as client:
        await client.post(f"{api_base}/chat/completions", json=body)
        started = time.perf_counter()
        for _ in range(calls):
            (await client.post(f"{api_base}/chat/completions", json=body)).raise_for_status()
        return (time.perf_counter() - started) / calls


async def litellm_round_trip(client: ModelClient, prompt: str, calls: int = 20) -> float:
    """Mean seconds of one ModelClient call (litellm) to the same endpoint."""
    await client.complete(_probe_messages(prompt))
    started = time.perf_counter()
    for _ in range(calls):
        await client.complete(_probe_messages(prompt))
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=32, help="episodes of the sequential baseline")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the endpoint sleeps per request")
    parser.add_argument("--levels", default="8,32,64")
    parser.add_argument("--waves", type=int, default=8, help="episodes per concurrency slot at each level")
    args = parser.parse_args()

    env = load_environment("factqa")
    levels = [int(x) for x in args.levels.split(",")]
    all_tasks = env.tasks("train", max([args.episodes] + [args.waves * lv for lv in levels]))
    tasks = all_tasks[: args.episodes]
    with FakeOpenAIServerProcess("factqa", delay_s=args.delay) as server:
        client = ModelClient("hosted_vllm/reference-stub", api_base=server.api_base, api_key="sk-local")
        policy = LLMPolicy(client)

        async def run_all() -> None:
            await timed_collect(env, policy, tasks[:4], 4)  # warm-up: imports, connections
            rtt_s = await raw_round_trip(server.api_base, tasks[0].prompt)
            litellm_s = await litellm_round_trip(client, tasks[0].prompt)
            base_s, steps, success = await timed_collect(env, policy, tasks, 1)
            base_rate = steps / base_s
            overhead_ms = (base_s / steps - rtt_s) * 1000
            over_delay_ms = (base_s / steps - args.delay) * 1000
            print(f"model delay {args.delay * 1000:.0f} ms per step")
            print(f"concurrency  1: {len(tasks):4d} episodes {steps:5d} steps {base_s:7.2f} s "
                  f"{base_rate:7.1f} steps/s  (baseline)  success={success:.0%}")
            for level in levels:
                wall, lv_steps, success = await timed_collect(env, policy, all_tasks[: args.waves * level], level)
                rate = lv_steps / wall
                print(f"concurrency {level:2d}: {args.waves * level:4d} episodes {lv_steps:5d} steps {wall:7.2f} s "
                      f"{rate:7.1f} steps/s  speed-up {rate / base_rate:5.1f}x  success={success:.0%}")
            print(f"raw HTTP round trip: {rtt_s * 1000:.2f} ms ({(rtt_s - args.delay) * 1000:.2f} ms over the delay)")
            print(f"wall time per step at concurrency 1, minus the delay: {over_delay_ms:.2f} ms")
            print(f"litellm round trip: {litellm_s * 1000:.2f} ms ({(litellm_s - rtt_s) * 1000:.2f} ms over raw HTTP)")
            print(f"framework overhead per step at concurrency 1 (minus the raw round trip): {overhead_ms:.2f} ms")
            print(f"  of which agentkd outside the litellm call: {(base_s / steps - litellm_s) * 1000:.2f} ms")

        asyncio.run(run_all())


if __name__ == "__main__":
    main()
