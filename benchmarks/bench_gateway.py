"""Benchmark `agentkd gateway`'s overhead per request against calling its teacher directly.

The teacher is the labelled fake OpenAI-compatible API of the tests (tests/fake_openai.py: it stands in for a paid
API and answers at once), on loopback. In one run the script starts the fake and two real `agentkd gateway`
processes in front of it (each recording into a temporary run folder): one posting to the fake over plain HTTP (the
default for an OpenAI-compatible teacher) and one through litellm (`--via-litellm`). It sends the same first-turn
request with tools to the fake and to each gateway in turn, and prints the median (p50) and p95 latency of each, each
gateway's overhead at the median (goal: <= 5 ms) and the ratio of the medians.

    python benchmarks/bench_gateway.py [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai import FAKE_KEY, TOOLS, FakeOpenAI  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_until_up(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/models", timeout=2)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not start: {process.stderr.read()[-2000:]}")
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="Requests to each endpoint (after 10 warm-up).")
    args = parser.parse_args()
    body = {"model": "fake-teacher", "messages": [{"role": "user", "content": "What is the weather in Oslo?"}],
            "tools": TOOLS, "temperature": 0}
    gateways = {"gateway": [], "litellm": ["--via-litellm"]}
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": FAKE_KEY}
        targets = {"direct": (fake.base, {"Authorization": f"Bearer {FAKE_KEY}"})}
        processes = []
        try:
            for name, extra in gateways.items():
                port = free_port()
                process = subprocess.Popen(
                    [sys.executable, "-m", "agentkd.cli", "gateway", "--teacher", "openai/fake-teacher", "--api-base",
                     fake.base, "--run", str(Path(scratch) / name), "--port", str(port), *extra],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                processes.append(process)
                targets[name] = (f"http://127.0.0.1:{port}/v1", {})
                wait_until_up(targets[name][0], process)
            timings: dict[str, list[float]] = {name: [] for name in targets}
            with httpx.Client(timeout=30) as client:
                for i in range(10 + args.requests):
                    for name, (url, headers) in targets.items():
                        started = time.perf_counter()
                        answer = client.post(f"{url}/chat/completions", json=body, headers=headers)
                        elapsed = (time.perf_counter() - started) * 1000
                        answer.raise_for_status()
                        if i >= 10:
                            timings[name].append(elapsed)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    labels = {"direct": "the fake API directly", "gateway": "gateway (HTTP upstream)",
              "litellm": "gateway (--via-litellm)"}
    for name, values in timings.items():
        print(f"{labels[name]:26s} p50 {percentile(values, 0.5):7.2f} ms   p95 {percentile(values, 0.95):7.2f} ms   "
              f"({len(values)} requests)")
    direct = percentile(timings["direct"], 0.5)
    for name in gateways:
        through = percentile(timings[name], 0.5)
        print(f"{labels[name]} overhead at p50: {through - direct:.2f} ms per request (goal <= 5 ms); "
              f"ratio of medians {through / direct:.2f}x")


if __name__ == "__main__":
    main()
