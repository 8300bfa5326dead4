"""Long episodes through `hf/`: the prompt prefix's KV cache reused (the default) against every prompt re-encoded.

The conversation is a real household episode (the reference solver's trajectory on a test task, full CodeAct
prompt), cut before each of its first STEPS assistant turns, with the "Thought:" prefill the student policy
continues: the growing prompt an evaluation episode sends at every step. Each step goes through
`agentkd.models.hf.local.generate` (greedy, the student's stop sequences) twice in this process, once with
AGENTKD_HF_PREFIX_CACHE=0 (the whole prompt encoded) and once with reuse on (the order alternates from step to step
so a shared machine's changing load falls on both alike; a call with reuse off leaves the stored cache alone, so
the reusing calls still see their previous step). Printed per step: prompt and cached tokens, seconds off and on,
and whether the two greedy texts are identical; then the mean seconds per step and the ratio off / on. The
conversation holds the solver's replies, not the model's, so the cache of the model's own reply is not reused
here as it is in a real episode (there reuse saves a little more).

    python benchmarks/bench_hf_prefix.py [--steps 10] [--max-tokens 32] [--threads 1] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def household_task(steps: int) -> tuple[Any, Any]:
    """(environment, the first household test task whose reference solution takes at least `steps` steps)."""
    from agentkd import load_environment
    from agentkd.env.loading import environment_module

    env = load_environment("household")
    plan = environment_module("household").solver.plan
    task = next((t for t in env.tasks("test") if len(plan(t)) + 1 >= steps), None)
    if task is None:
        raise SystemExit(f"no household test task has {steps} steps: ask for fewer with --steps")
    return env, task


def episode_prompts(env: Any, task: Any, steps: int) -> list[list[dict[str, str]]]:
    """The prompts of the first `steps` steps of the reference solver's episode on `task`."""
    from agentkd import CodeActAgent, ReferencePolicy

    traj = CodeActAgent(env, ReferencePolicy()).run(task)
    messages = [{"role": m["role"], "content": str(m.get("content") or "")} for m in traj.messages]
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"][:steps]
    return [[*messages[:cut], {"role": "assistant", "content": "Thought:"}] for cut in turns]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--model", default="smollm2-135m", help="an hf/ alias or Hugging Face folder")
    args = parser.parse_args()

    import torch

    from agentkd.codeact.parsing import CLOSING_FENCE
    from agentkd.codeact.prompts import DEFAULT_STOP
    from agentkd.models.hf import local as local_hf
    from agentkd.models.hf.prefix_cache import ENV_VAR

    torch.set_num_threads(args.threads)
    stop = [*DEFAULT_STOP, CLOSING_FENCE]
    print(f"before: {uptime()}; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    env, task = household_task(args.steps)
    prompts = episode_prompts(env, task, args.steps)

    def call(messages: list[dict[str, str]], reuse: bool) -> tuple[float, local_hf.Generation]:
        os.environ[ENV_VAR] = "1" if reuse else "0"
        started = time.perf_counter()
        gen = local_hf.generate(args.model, messages, max_tokens=args.max_tokens, stop=stop)
        return time.perf_counter() - started, gen

    call([{"role": "user", "content": "Hi"}], False)  # load the model and warm up
    local_hf.drop_prefix_cache(args.model)
    off_s, on_s, same = [], [], 0
    print(f"{'step':>4} {'prompt tok':>10} {'cached':>7} {'s off':>7} {'s on':>7} {'off/on':>7}  greedy")
    for k, messages in enumerate(prompts):
        order = (False, True) if k % 2 == 0 else (True, False)
        results = {reuse: call(messages, reuse) for reuse in order}
        (t_off, g_off), (t_on, g_on) = results[False], results[True]
        assert g_off.prompt_tokens == g_on.prompt_tokens and g_off.cached_tokens == 0
        off_s.append(t_off)
        on_s.append(t_on)
        identical = g_off.texts == g_on.texts
        same += identical
        print(f"{k + 1:4d} {g_on.prompt_tokens:10d} {g_on.cached_tokens:7d} {t_off:7.2f} {t_on:7.2f} "
              f"{t_off / t_on:6.2f}x  {'identical' if identical else 'DIFFERENT'}")
    off, on = statistics.mean(off_s), statistics.mean(on_s)
    print(f"\n{len(prompts)} steps of a household episode, {args.model}, greedy, max {args.max_tokens} new tokens: "
          f"{off:.2f} s/step re-encoding every prompt vs {on:.2f} s/step reusing the prefix: {off / on:.2f}x; "
          f"greedy texts identical in {same}/{len(prompts)} steps")
    print(f"after: {uptime()}")


if __name__ == "__main__":
    main()
