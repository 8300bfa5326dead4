"""Training throughput of a student in fp32 against bf16 autocast, in one process, on the same data.

Both runs use the trainer `agentkd train` builds (LoRA on all linear layers, one conversation per micro-batch,
gradients accumulated to the batch) on the same factqa reference conversations in the same order; they differ
only in `precision`. Tokens/s counts the tokens fed to the model in every optimizer step after the first (the
first pays one-off set-up), per second of wall time and per second of this process's CPU time (on a shared
machine the second shows the work done whatever share of the cores the run got). Also prints the loss of one fixed conversation in each precision, every step's
training loss, and the load average before and after (the machine may be shared). With --repeats N the two
alternate (fp32 first in odd rounds, bf16 first in even ones) so that a change of load hits both. Usage:
    python benchmarks/bench_train_precision.py [--student qwen2.5-coder-0.5b] [--steps 4] [--batch-size 2] [--repeats 1]
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

    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    cpu_rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for round_ in range(args.repeats):
        for precision in ("fp32", "bf16") if round_ % 2 == 0 else ("bf16", "fp32"):
            result = training_speed(model_path, examples, config, args.steps, precision)
            rates[precision].append(result.tokens_per_s)
            cpu_rates[precision].append(result.tokens_per_cpu_s)
            print(f"{precision}: {result.tokens_per_s:.1f} tokens/s ({result.timed_tokens} tokens in "
                  f"{result.timed_seconds:.1f} s over steps 2-{args.steps}; {result.tokens_per_cpu_s:.1f} tokens per "
                  f"CPU-second, {result.timed_cpu_seconds:.0f} CPU-s); step losses "
                  f"{', '.join(f'{loss:.3f}' for loss in result.losses)}; load "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    fp32, bf16 = (sum(rates[p]) / len(rates[p]) for p in ("fp32", "bf16"))
    cpu_fp32, cpu_bf16 = (sum(cpu_rates[p]) / len(cpu_rates[p]) for p in ("fp32", "bf16"))
    print(f"mean tokens/s: fp32 {fp32:.1f}, bf16 {bf16:.1f}; bf16 / fp32: {bf16 / fp32:.2f}x")
    print(f"mean tokens per CPU-second: fp32 {cpu_fp32:.1f}, bf16 {cpu_bf16:.1f}; bf16 / fp32: "
          f"{cpu_bf16 / cpu_fp32:.2f}x")


if __name__ == "__main__":
    main()
