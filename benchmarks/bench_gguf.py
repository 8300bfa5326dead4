"""Time CodeAct steps of a local GGUF model, in process (`gguf/ALIAS`) or served (`--api-base`).

    python benchmarks/bench_gguf.py qwen2.5-coder-0.5b --episodes 2 --steps 2
    python benchmarks/bench_gguf.py qwen2.5-coder-0.5b --api-base http://127.0.0.1:8080/v1   # a running server
    python benchmarks/bench_gguf.py qwen2.5-coder-0.5b --serve      # starts `agentkd serve`'s server, stops it after
    python benchmarks/bench_gguf.py qwen2.5-coder-0.5b --concurrent 2 --pool 1   # serialised
    python benchmarks/bench_gguf.py qwen2.5-coder-0.5b --concurrent 2 --pool 2   # two model copies

Each episode is a factqa train task's real CodeAct prompt; the reply starts from the prefilled `Thought:`
(in process; a server cannot continue a partial message) and stops at the end of its first code block, as
the student's does. Later steps append the reply and a fixed observation, so the prompt grows as in a run.
Prints one JSON line per step and a summary (completion tokens/s = completion tokens / wall seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agentkd.sampling import STUDENT_MAX_TOKENS


async def _episode(client: Any, messages: list[dict[str, Any]], steps: int, prefill: bool, stop: list[str],
                   log: list[dict[str, Any]], episode: int) -> None:
    for step in range(steps):
        sent = [*messages, {"role": "assistant", "content": "Thought:"}] if prefill else messages
        started = time.perf_counter()
        completion = await client.complete(sent, stop=stop)
        wall = time.perf_counter() - started
        row = {"episode": episode, "step": step, "prompt_tokens": completion.usage.prompt_tokens,
               "completion_tokens": completion.usage.completion_tokens, "seconds": round(wall, 2),
               "tok_per_s": round(completion.usage.completion_tokens / wall, 1)}
        log.append(row)
        print(json.dumps(row), flush=True)
        messages = [*messages, {"role": "assistant", "content": ("Thought:" if prefill else "") + completion.text},
                    {"role": "user", "content": "Observation:\n(no output; use print() to see values)"}]


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    from agentkd.codeact.prompts import DEFAULT_STOP, initial_messages
    from agentkd.env.loading import load_environment
    from agentkd.models.client import ModelClient

    env = load_environment("factqa")
    tasks = env.tasks("train", args.episodes)
    if args.api_base:
        client = ModelClient(f"hosted_vllm/{args.model}", api_base=args.api_base, max_tokens=args.max_tokens,
                             api_key="none")
    else:
        from agentkd.models.llama.door import get_door

        client = ModelClient(f"gguf/{args.model}", max_tokens=args.max_tokens)
        loaded = time.perf_counter()
        get_door(args.model)  # load outside the timings
        print(json.dumps({"load_seconds": round(time.perf_counter() - loaded, 2)}), flush=True)
    stop = [*DEFAULT_STOP, "\n```\n"]
    prefill = not (args.api_base or args.no_prefill)
    log: list[dict[str, Any]] = []
    started = time.perf_counter()
    if args.concurrent > 1:
        await asyncio.gather(*[_episode(client, initial_messages(env, t), args.steps, prefill, stop, log, i)
                               for i, t in enumerate(tasks)])
    else:
        for i, t in enumerate(tasks):
            await _episode(client, initial_messages(env, t), args.steps, prefill, stop, log, i)
    wall = time.perf_counter() - started
    completion = sum(r["completion_tokens"] for r in log)
    return {"model": args.model, "route": "server" if args.api_base else "in-process", "prefill": prefill,
            "threads": os.environ.get("AGENTKD_LLAMA_THREADS"), "pool": os.environ.get("AGENTKD_LLAMA_POOL"),
            "concurrent": args.concurrent, "steps": len(log), "wall_seconds": round(wall, 2),
            "seconds_per_step": round(sum(r["seconds"] for r in log) / len(log), 2),
            "mean_prompt_tokens": round(sum(r["prompt_tokens"] for r in log) / len(log)),
            "completion_tokens": completion, "completion_tok_per_s": round(completion / wall, 1),
            "load_avg_1min_at_end": round(os.getloadavg()[0], 2)}


@contextmanager
def served(model: str) -> Iterator[str]:
    """llama.cpp's server for `model` on a free port (the command `agentkd serve` runs); stopped by pid after."""
    from agentkd.models.llama.server import server_command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(server_command(model, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        started = time.perf_counter()
        while True:
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.perf_counter() - started > 120:
                    raise SystemExit(f"the server did not start (exit status {process.poll()})")
                time.sleep(0.3)
        print(json.dumps({"server_ready_seconds": round(time.perf_counter() - started, 2)}), flush=True)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a GGUF alias (see `agentkd models list`) or a .gguf path")
    parser.add_argument("--api-base", help="time a served model (`agentkd serve`) instead of the in-process door")
    parser.add_argument("--serve", action="store_true", help="start llama.cpp's server for the model and time it")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="steps per episode")
    parser.add_argument("--concurrent", type=int, default=1, help="run the episodes concurrently (1: one after another)")
    parser.add_argument("--threads", type=int, help="sets AGENTKD_LLAMA_THREADS")
    parser.add_argument("--pool", type=int, help="sets AGENTKD_LLAMA_POOL (model copies in process)")
    parser.add_argument("--no-prefill", action="store_true",
                        help="in process too, send the prompt without the `Thought:` prefill (as a server gets it)")
    parser.add_argument("--max-tokens", type=int, default=STUDENT_MAX_TOKENS)
    args = parser.parse_args()
    if args.threads:
        os.environ["AGENTKD_LLAMA_THREADS"] = str(args.threads)
    if args.pool:
        os.environ["AGENTKD_LLAMA_POOL"] = str(args.pool)
    if args.concurrent > 1:
        args.episodes = max(args.episodes, args.concurrent)
    if args.serve:
        with served(args.model) as base:
            args.api_base = base
            print(json.dumps(asyncio.run(_run(args))), flush=True)
    else:
        print(json.dumps(asyncio.run(_run(args))), flush=True)


if __name__ == "__main__":
    main()
