"""Student inference speed: transformers `generate` against llama.cpp, same prompts, one process.

For SmolLM2-135M-Instruct as shipped (the frozen student, full CodeAct system prompt) and for a run's
trained student (RUN/student/merged, short student prompt), every prompt is a real CodeAct step prompt:
a factqa trajectory of the run cut before one of its assistant turns, with the "Thought:" prefill the
student policy continues. Each backend decodes greedily with the student's stop sequences
(agentkd's own settings), one prompt at a time, no KV cache kept between prompts; each prompt goes through
every backend in turn, so that a shared machine's changing load falls on all of them alike:

- transformers: `model.generate` on the Hugging Face folder, fp32, torch's default threads (as `hf/`);
- llama.cpp (`llama_cpp.Llama`, 1 and 2 threads): the model exported by `agentkd.train.export`
  (q8_0 and f16), and for the base also the packaged Q4_1 GGUF it is made from.

Both get the same token ids (the Hugging Face chat template, checked against llama.cpp's own tokenizer).
Printed per backend: seconds per step, completion tokens/s, the speed-up over transformers measured in
this process, and greedy agreement with transformers (identical continuations; for a divergence, the
position and transformers' logit margin between its token and llama.cpp's there: a near-tie that
quantisation tips over, or a real difference).

    python benchmarks/bench_inference.py --run RUN [--prompts 6] [--max-tokens 128] [--threads 1,2] [--types q8_0,f16]
        [--torch-threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@dataclass
class Backend:
    name: str
    seconds: list[float] = field(default_factory=list)
    tokens: list[list[int]] = field(default_factory=list)


def build_prompts(run: Path, count: int, short: bool) -> list[list[dict[str, str]]]:
    """Step prompts cut from the run's trajectories: before assistant turn 0, 1, 0, 1, ... of successive episodes."""
    from agentkd.codeact.prompts import with_student_prompt
    from agentkd.env.loading import load_environment
    from agentkd.run import RunFolder

    folder = RunFolder(run)
    env = load_environment(folder.env_spec())
    prompts = []
    for i, traj in enumerate(folder.iter_trajectories()):
        messages = [{"role": m["role"], "content": str(m.get("content") or "")} for m in traj.messages]
        turns = [j for j, m in enumerate(messages) if m["role"] == "assistant"]
        cut = turns[min(i % 2, len(turns) - 1)]
        conversation = messages[:cut]
        if short:
            conversation = with_student_prompt(env, conversation)
        prompts.append([*conversation, {"role": "assistant", "content": "Thought:"}])
        if len(prompts) == count:
            break
    return prompts


def encode(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids exactly as agentkd's `hf/` provider renders a continued assistant message."""
    ids = tokenizer.apply_chat_template(messages, continue_final_message=True, add_generation_prompt=False)
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


class Transformers:
    """The baseline: `model.generate` on the Hugging Face folder, fp32, greedy, the student's stop strings."""

    def __init__(self, folder: Path, max_tokens: int, stop: list[str], threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.threads = threads or torch.get_num_threads()

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        self.kwargs = {"max_new_tokens": max_tokens, "do_sample": False, "pad_token_id": pad, "stop_strings": stop,
                       "tokenizer": self.tokenizer}
        self.backend = Backend(f"transformers fp32 ({self.threads} thread{'s' if self.threads > 1 else ''})")
        self.same_tokens = True

    def decode(self, ids: list[int]) -> list[int]:
        import torch

        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = self.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                      **self.kwargs)
        new = out[0, len(ids):].tolist()
        eos = self.tokenizer.eos_token_id
        return new[: next((i + 1 for i, t in enumerate(new) if t == eos), len(new))]


class LlamaCpp:
    """llama.cpp through llama-cpp-python: greedy, token by token, stopping at EOS or once a stop string
    appears in the text (as transformers does)."""

    def __init__(self, gguf: Path, label: str, threads: int, max_tokens: int, stop: list[str]) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(str(gguf), n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads,
                                   verbose=False)
        self.max_tokens, self.stop = max_tokens, stop
        self.backend = Backend(f"llama.cpp {label} ({threads} thread{'s' if threads > 1 else ''})")
        self.same_tokens = True

    def decode(self, ids: list[int]) -> list[int]:
        llm = self.llm
        llm.reset()  # no KV cache reuse across prompts: every step pays its full prompt
        new: list[int] = []
        for token in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
            new.append(token)
            if token == llm.token_eos() or len(new) >= self.max_tokens:
                break
            if any(s in llm.detokenize(new).decode("utf-8", errors="ignore") for s in self.stop):
                break
        return new


def measure(runners: list[Any], prompts: list[list[int]]) -> None:
    """Every prompt through every backend in turn, so that all see the same load on a shared machine."""
    for runner in runners:
        runner.decode(prompts[0][:32])  # warm-up
    for ids in prompts:
        for runner in runners:
            started = time.perf_counter()
            runner.backend.tokens.append(runner.decode(ids))
            runner.backend.seconds.append(time.perf_counter() - started)


def margin(model: Any, prompt: list[int], prefix: list[int], ours: int, theirs: int) -> float:
    """transformers' logit of its own token minus that of llama.cpp's token after prompt + common prefix."""
    import torch

    with torch.inference_mode():
        logits = model(torch.tensor([prompt + prefix])).logits[0, -1]
    return float(logits[ours] - logits[theirs])


def agreement(reference: Backend, other: Backend, model: Any, prompts: list[list[int]]) -> str:
    same, notes = 0, []
    for prompt, ref, got in zip(prompts, reference.tokens, other.tokens):
        if ref == got:
            same += 1
            continue
        at = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
        if at < min(len(ref), len(got)):
            notes.append(f"tok {at}: margin {margin(model, prompt, ref[:at], ref[at], got[at]):.2f}")
        else:
            notes.append(f"tok {at}: one stops earlier")
    return f"{same}/{len(prompts)} identical" + (f" ({'; '.join(notes)})" if notes else "")


def report(title: str, reference: Backend, others: list[tuple[Backend, bool]], model: Any, prompts: list[list[int]]) -> None:
    base_step = statistics.mean(reference.seconds)
    print(f"\n## {title}: {len(prompts)} CodeAct step prompts, {statistics.mean(map(len, prompts)):.0f} prompt tokens "
          f"on average")
    print(f"{'backend':42} {'s/step':>7} {'gen tok':>8} {'tok/s':>7} {'speed-up':>8}  greedy vs transformers")
    for backend, same_tokens in [(reference, True), *others]:
        step = statistics.mean(backend.seconds)
        generated = sum(map(len, backend.tokens))
        rate = generated / sum(backend.seconds)
        agree = "(reference)" if backend is reference else agreement(reference, backend, model, prompts)
        if not same_tokens:
            agree += "; llama.cpp tokenises the prompt text differently"
        print(f"{backend.name:42} {step:7.2f} {generated:8d} {rate:7.1f} {base_step / step:7.1f}x  {agree}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run with a trained student (agentkd train)")
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", default="1,2", help="llama.cpp thread counts, comma-separated")
    parser.add_argument("--torch-threads", default="",
                        help="also run transformers with these torch thread counts (the baseline keeps torch's default)")
    parser.add_argument("--types", default="q8_0,f16", help="GGUF types to export and run, comma-separated")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from agentkd.codeact.parsing import CLOSING_FENCE
    from agentkd.codeact.prompts import DEFAULT_STOP
    from agentkd.models.hf.local import resolve_local_model
    from agentkd.run.layout import RunLayout
    from agentkd.train.export import export_gguf, packaged_base_gguf

    stop = [*DEFAULT_STOP, CLOSING_FENCE]  # the student policy's stop sequences
    threads = [int(t) for t in args.threads.split(",")]
    types = [t for t in args.types.split(",") if t]
    print(f"load: {os.getloadavg()} on {os.cpu_count()} CPUs; uptime: "
          f"{subprocess.run(['uptime'], check=False, capture_output=True, text=True).stdout.strip()}")
    students = [("SmolLM2-135M-Instruct (base, full prompt)", lambda: resolve_local_model("smollm2-135m"), False),
                ("trained student (short prompt)", lambda: RunLayout(args.run).trained_student(), True)]
    with tempfile.TemporaryDirectory(prefix="bench_inference") as tmp:
        for title, locate, short in students:
            folder = locate()
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            messages = build_prompts(args.run, args.prompts, short)
            texts = [tokenizer.apply_chat_template(m, continue_final_message=True, tokenize=False) for m in messages]
            prompts = [encode(tokenizer, m) for m in messages]
            ggufs = []
            for outtype in types:
                exported = export_gguf(folder, Path(tmp) / f"{folder.parent.name}.{outtype}.gguf", outtype=outtype)
                print(f"{title}: exported {outtype} in {exported.seconds:.1f} s ({exported.bytes / 1e6:.0f} MB)")
                ggufs.append((f"{outtype} export", exported.path))
            if not short:
                ggufs.append(("packaged Q4_1", packaged_base_gguf()))
            baseline = Transformers(folder, args.max_tokens, stop)
            runners: list[Any] = [baseline]
            runners += [Transformers(folder, args.max_tokens, stop, int(n)) for n in args.torch_threads.split(",") if n]
            for label, path in ggufs:
                for n in threads:
                    runner = LlamaCpp(path, label, n, args.max_tokens, stop)
                    runner.same_tokens = all(runner.llm.tokenize(t.encode(), add_bos=False, special=True) == ids
                                             for t, ids in zip(texts, prompts))
                    runners.append(runner)
            measure(runners, prompts)
            report(title, baseline.backend, [(r.backend, r.same_tokens) for r in runners[1:]], baseline.model, prompts)
            for runner in runners[1:]:
                if isinstance(runner, LlamaCpp):
                    runner.llm.close()
    print(f"\nuptime after: {subprocess.run(['uptime'], check=False, capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
