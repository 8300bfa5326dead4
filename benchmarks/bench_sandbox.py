"""Benchmark the sandboxed Python worker against a fresh `python -c` subprocess per call.

In one run, for each isolation mode available (bwrap, none), prints:
- per-call latency (median and p95) of a trivial step in the persistent worker;
- per-call latency of the same step as a fresh `python -c` subprocess (the naive baseline);
- the speed-up of the persistent worker over that baseline (goal: >= 3x);
- the cost of starting (and closing) an episode's worker (median): PythonSandbox.start() + close();
- the one-time cold start of a sandbox (its fork server), paid once per host process and config;
- how episodes' workers are kept apart (uid / pidns / shared) and what caps their processes.

Goals: per-step overhead <= 1 ms and an episode's worker start <= 10 ms, at the median.

    python benchmarks/bench_sandbox.py [--calls 300]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from agentkd import PythonSandbox

STEP = "total = sum(range(100))\nprint(total)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_calls(fn, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    fresh = time_calls(lambda: subprocess.run([sys.executable, "-I", "-c", STEP], capture_output=True, check=True),
                       max(20, args.calls // 10))
    fresh_med = statistics.median(fresh)
    print(f"fresh `python -c` per call:      median {fresh_med:7.2f} ms  p95 {percentile(fresh, .95):7.2f} ms")
    modes = ["bwrap", "none"] if shutil.which("bwrap") else ["none"]
    for n, mode in enumerate(modes):
        cold_started = time.perf_counter()
        with PythonSandbox(isolation=mode, tmp_mb=100 + n) as cold:  # a config no server exists for yet
            cold_ms = (time.perf_counter() - cold_started) * 1000
            assert cold.run("print(1)").stdout == "1\n"
        with PythonSandbox(isolation=mode) as sb:
            assert sb.run(STEP).stdout == "4950\n"
            step = time_calls(lambda: sb.run(STEP), args.calls)
            workers, cap = sb.server.workers, sb.server.process_cap
        sandbox = PythonSandbox(isolation=mode)
        sandbox.start()
        sandbox.close()

        def start_episode() -> None:
            sandbox.start()
            sandbox.close()

        starts = time_calls(start_episode, max(20, args.calls // 5))
        med = statistics.median(step)
        print(f"[{mode:5s}] persistent worker per call: median {med:7.3f} ms  p95 {percentile(step, .95):7.3f} ms  "
              f"speed-up vs fresh subprocess {fresh_med / med:6.1f}x")
        print(f"[{mode:5s}] start+close an episode's worker: median {statistics.median(starts):7.2f} ms  "
              f"p95 {percentile(starts, .95):7.2f} ms")
        print(f"[{mode:5s}] cold start of the sandbox (once per process): {cold_ms:7.2f} ms")
        print(f"[{mode:5s}] episodes' workers kept apart by: {workers}; process cap: {cap}")


if __name__ == "__main__":
    main()
