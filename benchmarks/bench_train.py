"""Training throughput of agentkd's setup vs a plain TRL default on the same data, in one process.

Both train the same student (SmolLM2-135M unless --student names another) with the same LoRA (r=32, all
linear layers), learning rate, batch size (8 conversations per step) and the same pre-tokenised factqa reference
conversations (labels on assistant tokens). They differ only in how the batch is run:

- baseline: `SFTConfig` defaults: padded batches, no packing, gradient checkpointing on (TRL's default);
  bf16 is TRL's default on CUDA, but on a CPU that default refuses to start, so the baseline runs fp32 there;
- agentkd: `TrainConfig` defaults: on a CPU one conversation per micro-batch with gradients accumulated
  to the same batch of 8 (no padding at all), no gradient checkpointing, bf16 autocast where the CPU has native
  bf16 units (AMX or AVX-512 BF16), glibc told to keep freed memory.

Throughput counts real tokens only (pad tokens are work, not data). Usage:
    python benchmarks/bench_train.py [--student smollm2-135m] [--trajectories 96] [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def collect(run: Path, n: int) -> None:
    subprocess.run([sys.executable, "-m", "agentkd.cli", "collect", "--env", "factqa", "--teacher", "reference",
                    "--n", str(n), "--run", str(run), "--sandbox", "none"], check=True, capture_output=True)


def timed_train(trainer, real_tokens_per_step: float) -> tuple[float, float]:
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return seconds, real_tokens_per_step * trainer.state.global_step / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=int, default=96)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per setup (batch 8)")
    parser.add_argument("--student", default="smollm2-135m", help="a packaged student alias (e.g. qwen2.5-coder-0.5b)")
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from agentkd.env.loading import load_environment
    from agentkd.models.hf.local import resolve_local_model
    from agentkd.run.folder import RunFolder
    from agentkd.train.config import TrainConfig
    from agentkd.train.trainer import build_trainer, prepare_data, use_bf16

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="bench_train_"))
    collect(work / "run", args.trajectories)
    env = load_environment("factqa")
    model_path = resolve_local_model(args.student)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    config = TrainConfig()
    examples, _report, _ = prepare_data(env, list(RunFolder(work / "run").iter_trajectories()), tokenizer, config)
    batch = config.batch_size
    needed = args.steps * batch
    examples = (examples * (needed // len(examples) + 1))[:needed]
    real_per_step = sum(len(e.input_ids) for e in examples) / args.steps
    rows = [{"input_ids": e.input_ids, "assistant_masks": e.assistant_masks} for e in examples]
    print(f"student {args.student}; data: {needed} factqa conversations, {real_per_step / batch:.0f} tokens each "
          f"on average; {args.steps} steps of batch {batch}; torch threads {torch.get_num_threads()}")

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    baseline_args = SFTConfig(output_dir=str(work / "baseline"), learning_rate=config.lr, lr_scheduler_type="cosine",
                              per_device_train_batch_size=batch, max_steps=args.steps, report_to=[],
                              save_strategy="no", disable_tqdm=True,
                              bf16=torch.cuda.is_available())  # TRL's bf16 default refuses to start on a CPU
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
    baseline = SFTTrainer(model=model, args=baseline_args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer, peft_config=lora)
    lengths = [len(r["input_ids"]) for r in rows]
    padded = sum(max(lengths[i:i + batch]) * batch for i in range(0, len(lengths), batch))
    base_s, base_tps = timed_train(baseline, real_per_step)

    ours = build_trainer(model_path, examples, config.model_copy(update={"epochs": 1.0}), work / "ours")
    ours.args.max_steps = args.steps
    ours.args.save_strategy = "no"
    ours_s, ours_tps = timed_train(ours, real_per_step)

    print(f"baseline (plain TRL SFTConfig defaults, padded, gradient checkpointing, bf16={baseline_args.bf16}): "
          f"{base_s:.1f} s, {base_tps:.0f} real tokens/s ({padded / sum(lengths):.2f}x tokens incl. padding)")
    print(f"agentkd  (micro-batch {config.micro_batch_size} x {config.gradient_accumulation} accumulated, no checkpointing, "
          f"bf16={use_bf16(config.precision)}): {ours_s:.1f} s, "
          f"{ours_tps:.0f} real tokens/s")
    print(f"speed-up: {ours_tps / base_tps:.2f}x")


if __name__ == "__main__":
    main()
