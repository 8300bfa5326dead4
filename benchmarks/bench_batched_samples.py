"""Time n samples of one CodeAct step from an in-process GGUF model: decoded together or one after another.

    AGENTKD_LLAMA_THREADS=1 python benchmarks/bench_batched_samples.py qwen2.5-coder-0.5b --repeats 5
    AGENTKD_LLAMA_THREADS=1 python benchmarks/bench_batched_samples.py qwen2.5-coder-0.5b --prompt icd --demos 4

One process, one model copy. The prompt is a factqa task's real CodeAct prompt with the student's `Thought:`
prefill (`--prompt icd`: the in-context-distilled student's, with `--demos` teacher steps retrieved from a store
built from the reference teacher's factqa train episodes); the reply stops where the student's does (stop
strings, end of turn held until a code fence). Three modes, interleaved in each repeat so that load drifts
alike over them: one sample (n=1), n samples one after another (`together=False`: each replays only the
prompt's last token), and n samples decoded together (one batch of sequences sharing the prompt's KV cells).
Three cases: `fixed` (the prompt in the KV cache, no stop strings, the end of turn held: every sample decodes
exactly --fixed-tokens tokens, so the modes differ only in how they decode), `warm` (the real step, the prompt
already in the KV cache, as for a step whose prompt extends the previous one) and `cold` (the real step, the
cache emptied first, so the whole prompt is evaluated). Repeat r takes the prompt of task r mod --tasks; every
mode of a repeat uses the same seed, so the n=1 sample is the first of the n (the batched kernels round a
little differently, so a sample can still part from its one-by-one twin). Prints one JSON line per call, then
the cost of one llama_decode of k tokens (one per sequence) for k = 1..n, and a summary per case and mode:
median seconds, the ratio of medians and of summed seconds to n=1, and the mean completion tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from typing import Any

from agentkd.policies.settings import CandidateOptions
from agentkd.sampling import STUDENT_MAX_TOKENS


def prompts(kind: str, first: int, count: int, demos: int) -> list[list[dict[str, Any]]]:
    """The messages of `count` factqa step-1 prompts, each ending with the `Thought:` prefill."""
    from agentkd.codeact.prompts import initial_messages
    from agentkd.env.loading import load_environment

    env = load_environment("factqa")
    prefill = {"role": "assistant", "content": "Thought:"}
    if kind == "plain":
        return [[*initial_messages(env, task), prefill] for task in env.tasks("train", first + count)[first:]]
    from agentkd import ModelClient, ReferencePolicy
    from agentkd.collect import collect
    from agentkd.policies.base import PolicyContext
    from agentkd.policies.student import StudentPolicy
    from agentkd.run import RunFolder
    from agentkd.store import DemoStore

    with tempfile.TemporaryDirectory() as folder:
        run = RunFolder(folder)
        asyncio.run(collect(env, ReferencePolicy(), env.tasks("train", 30), run, concurrency=4))
        store = DemoStore.build(run.iter_trajectories())
    student = StudentPolicy(ModelClient("gguf/qwen2.5-coder-0.5b"), store=store, k=demos)
    return [[*student.messages(PolicyContext(env, task, initial_messages(env, task), [])), prefill]
            for task in env.tasks("test", first + count)[first:]]


def decode_cost(door: Any, widths: list[int], steps: int = 10) -> dict[int, float]:
    """Milliseconds of one llama_decode of k tokens, one per sequence (all sharing a 200-token prompt)."""
    import llama_cpp

    llama = door._slots[0].llama
    ctx, batch = llama._ctx, llama._batch.batch
    costs: dict[int, float] = {}
    for k in widths:
        door.clear_cache()
        llama.eval(llama.tokenize(b"def fibonacci(n):\n    " * 20, add_bos=False))
        for seq in range(1, k):
            llama_cpp.llama_memory_seq_cp(ctx.memory, 0, seq, -1, -1)
        started = time.perf_counter()
        for i in range(steps):
            for row in range(k):
                batch.token[row], batch.pos[row], batch.n_seq_id[row] = 100 + row, llama.n_tokens + i, 1
                batch.seq_id[row][0], batch.logits[row] = row, True
            batch.n_tokens = k
            ctx.decode(llama._batch)
        costs[k] = round((time.perf_counter() - started) / steps * 1000, 1)
    door.clear_cache()
    return costs


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the modes over `args.repeats` repeats for each case; the summary as a dict."""
    from agentkd.codeact.parsing import CLOSING_FENCE
    from agentkd.codeact.prompts import DEFAULT_STOP
    from agentkd.models.distribution.catalog import resolve_gguf
    from agentkd.models.llama.door import LlamaDoor
    from agentkd.models.llama.settings import default_n_ctx, default_threads

    asked = prompts(args.prompt, args.task, args.tasks, args.demos)
    loaded = time.perf_counter()
    door = LlamaDoor(resolve_gguf(args.model), pool=1, threads=default_threads(), n_ctx=default_n_ctx(),
                     seqs=max(args.n, 2))
    sizes = [len(door.prompt_tokens(m)) for m in asked]
    print(json.dumps({"load_seconds": round(time.perf_counter() - loaded, 2), "threads": door.threads,
                      "prompt_tokens": sizes}), flush=True)
    step = {"temperature": args.temperature, "max_tokens": args.max_tokens, "stop": [*DEFAULT_STOP, CLOSING_FENCE],
            "end_only_after": "```"}
    fixed = {"temperature": args.temperature, "max_tokens": args.fixed_tokens, "stop": [],
             "end_only_after": "\x00"}  # never written: the end of turn is held, every sample runs to max_tokens
    modes = [("n=1", 1, True), (f"n={args.n} sequential", args.n, False), (f"n={args.n} batched", args.n, True)]
    rows: list[dict[str, Any]] = []
    for case in args.cases:
        call = fixed if case == "fixed" else step
        for repeat in range(args.repeats):
            messages = asked[repeat % len(asked)]
            for name, n, together in modes[repeat % 3:] + modes[: repeat % 3]:
                if case == "cold":
                    door.clear_cache()
                else:  # the prompt into the cache, and the weights' pages touched, outside the timing
                    door.generate(messages, **{**call, "max_tokens": 1}, seed=0)
                started = time.perf_counter()
                gen = door.generate(messages, **call, n=n, seed=1000 + repeat, together=together)
                wall = time.perf_counter() - started
                row = {"case": case, "repeat": repeat, "prompt": repeat % len(asked), "mode": name,
                       "seconds": round(wall, 3), "completion_tokens": gen.completion_tokens,
                       "cached_tokens": gen.cached_tokens, "distinct_texts": len(set(gen.texts)),
                       "finish_reasons": gen.finish_reasons}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(json.dumps({"decode_ms_by_tokens": decode_cost(door, list(range(1, args.n + 1)))}), flush=True)
    summary: dict[str, Any] = {"model": args.model, "prompt": args.prompt, "prompt_tokens": sizes, "n": args.n, "temperature": args.temperature, "max_tokens": args.max_tokens,
                               "repeats": args.repeats, "threads": door.threads,
                               "load_avg_1min_at_end": round(os.getloadavg()[0], 2), "cases": {}}
    for case in args.cases:
        picked = {name: [r for r in rows if r["case"] == case and r["mode"] == name] for name, _, _ in modes}
        base_median = statistics.median(r["seconds"] for r in picked["n=1"])
        base_total = sum(r["seconds"] for r in picked["n=1"])
        summary["cases"][case] = {
            name: {"median_seconds": round(statistics.median(r["seconds"] for r in got), 3),
                   "median_ratio_to_n1": round(statistics.median(r["seconds"] for r in got) / base_median, 2),
                   "total_ratio_to_n1": round(sum(r["seconds"] for r in got) / base_total, 2),
                   "mean_completion_tokens": round(statistics.mean(r["completion_tokens"] for r in got), 1)}
            for name, got in picked.items()}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a GGUF alias (see `agentkd models list`) or a .gguf path")
    candidates = CandidateOptions()
    parser.add_argument("--n", type=int, default=candidates.samples, help="samples per step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", nargs="+", choices=["fixed", "warm", "cold"], default=["fixed", "warm", "cold"])
    parser.add_argument("--fixed-tokens", type=int, default=64, help="tokens every sample decodes in the fixed case")
    parser.add_argument("--prompt", choices=["plain", "icd"], default="plain",
                        help="plain: a factqa train task's prompt; icd: a test task's, with retrieved demonstrations")
    parser.add_argument("--demos", type=int, default=4, help="demonstrations in an icd prompt")
    parser.add_argument("--temperature", type=float, default=candidates.temperature)
    parser.add_argument("--max-tokens", type=int, default=STUDENT_MAX_TOKENS)
    parser.add_argument("--task", type=int, default=0, help="the first factqa task giving a prompt")
    parser.add_argument("--tasks", type=int, default=5, help="prompts from this many tasks, one per repeat in turn")
    parser.add_argument("--threads", type=int, help="sets AGENTKD_LLAMA_THREADS")
    args = parser.parse_args()
    if args.threads:
        os.environ["AGENTKD_LLAMA_THREADS"] = str(args.threads)
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
