"""Training throughput of a student in fp32 against bf16 autocast (or, with --compare head, with the LM head scoring
every position against the trained positions only), in one process, on the same data.

Both runs use the trainer `agentkd train` builds (LoRA on all linear layers, one conversation per micro-batch,
gradients accumulated to the batch) on the same factqa reference conversations in the same order; they differ
only in `precision` (or in `head_positions`, both at `precision: auto`). Tokens/s counts the tokens fed to the model in every optimizer step after the first (the
first pays one-off set-up), per second of wall time and per second of this process's CPU time (on a shared
machine the second shows the work done whatever share of the cores the run got). Also prints the loss of one fixed conversation in each precision, every step's
training loss, and the load average before and after (the machine may be shared). With --repeats N the two
alternate (the first variant first in odd rounds, the second first in even ones) so that a change of load hits
both. Usage:
    python benchmarks/bench_train_precision.py [--student qwen2.5-coder-0.5b] [--steps 4] [--batch-size 2] [--repeats 1]
        [--compare precision|head]
"""

from __future__ import annotations

import argparse
import os
import platform

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="qwen2.5-coder-0.5b", help="a trainable alias or model folder")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per precision (the first is not timed)")
    parser.add_argument("--batch-size", type=int, default=2, help="conversations per optimizer step")
    parser.add_argument("--lora-r", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of both precisions, alternating their order")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--compare", choices=("precision", "head"), default="precision",
                        help="precision: fp32 against bf16 autocast; head: the LM head over every position against "
                             "the trained positions only")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentkd import CodeActAgent, ReferencePolicy, SandboxConfig, load_environment
    from agentkd.models.hf.local import resolve_local_model
    from agentkd.train.config import TrainConfig
    from agentkd.train.sft_data import student_conversation, tokenize_conversation
    from agentkd.train.speed import batch_loss, training_speed
    from agentkd.train.trainer import cpu_bf16_flags

    if args.threads:
        torch.set_num_threads(args.threads)
    env = load_environment("factqa")
    agent = CodeActAgent(env, ReferencePolicy(), sandbox=SandboxConfig(isolation="none"))
    needed = args.steps * args.batch_size
    trajectories = [agent.run(task) for task in env.tasks("train", needed)]
    model_path = resolve_local_model(args.student)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    examples = [tokenize_conversation(tokenizer, student_conversation(env, t), t.task.id) for t in trajectories]
    config = TrainConfig(student=args.student, lora_r=args.lora_r, batch_size=args.batch_size, micro_batch_size=1,
                         warmup_steps=0, epochs=1.0)
    print(f"{args.student}: {needed} factqa conversations, {sum(len(e.input_ids) for e in examples) / needed:.0f} "
          f"tokens each on average; {args.steps} steps of batch {args.batch_size}, LoRA r={args.lora_r}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {platform.processor() or platform.machine()}, "
          f"bf16 CPU flags: {', '.join(sorted(cpu_bf16_flags())) or 'none'}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32).eval()
    fixed = min(examples, key=lambda e: len(e.input_ids))
    fp32_loss, bf16_loss = batch_loss(model, fixed, bf16=False), batch_loss(model, fixed, bf16=True)
    del model
    print(f"fixed conversation ({len(fixed.input_ids)} tokens, {fixed.trained_tokens} trained): loss fp32 "
          f"{fp32_loss:.4f}, bf16 autocast {bf16_loss:.4f} (relative difference "
          f"{abs(bf16_loss - fp32_loss) / fp32_loss:.2%})")

    # variant name -> (config, precision); the first is the baseline of the ratio
    variants = ({"fp32": (config, "fp32"), "bf16": (config, "bf16")} if args.compare == "precision" else
                {f"head {mode}": (config.model_copy(update={"head_positions": mode}), "auto")
                 for mode in ("all", "trained")})
    names = list(variants)
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu_rates: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            variant, precision = variants[name]
            result = training_speed(model_path, examples, variant, args.steps, precision)
            rates[name].append(result.tokens_per_s)
            cpu_rates[name].append(result.tokens_per_cpu_s)
            print(f"{name}: {result.tokens_per_s:.1f} tokens/s ({result.timed_tokens} tokens in "
                  f"{result.timed_seconds:.1f} s over steps 2-{args.steps}; {result.tokens_per_cpu_s:.1f} tokens per "
                  f"CPU-second, {result.timed_cpu_seconds:.0f} CPU-s); step losses "
                  f"{', '.join(f'{loss:.3f}' for loss in result.losses)}; load "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base, other = names
    wall, cpu = ({n: sum(r[n]) / len(r[n]) for n in names} for r in (rates, cpu_rates))
    print(f"mean tokens/s: {base} {wall[base]:.1f}, {other} {wall[other]:.1f}; {other} / {base}: "
          f"{wall[other] / wall[base]:.2f}x")
    print(f"mean tokens per CPU-second: {base} {cpu[base]:.1f}, {other} {cpu[other]:.1f}; {other} / {base}: "
          f"{cpu[other] / cpu[base]:.2f}x")

if __name__ == "__main__":
    main()
