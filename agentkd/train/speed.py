"""Training throughput on a fixed workload, and the loss of one batch in fp32 and under bf16 autocast.

`training_speed` runs a few optimizer steps of the trainer `agentkd train` builds (same LoRA, micro-batches,
precision rule) and counts the tokens fed to the model after the first step (the first pays one-off set-up);
`batch_loss` is the loss of one example's assistant tokens, the check that bf16 autocast trains the same
function as fp32.
"""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkd.train.config import TrainConfig
from agentkd.train.sft_data import SFTExample


@dataclass
class SpeedResult:
    """What `training_speed` measured for one precision."""

    precision: str
    steps: int
    timed_tokens: int
    """Tokens fed to the model in the timed steps (every step after the first)."""
    timed_seconds: float
    timed_cpu_seconds: float
    """CPU time of this process in the timed steps (all its threads): on a shared machine, the work done
    whatever share of the cores the process got."""
    losses: list[float] = field(default_factory=list)
    """The training loss of every step."""

    @property
    def tokens_per_s(self) -> float:
        return self.timed_tokens / self.timed_seconds if self.timed_seconds else 0.0

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.timed_tokens / self.timed_cpu_seconds if self.timed_cpu_seconds else 0.0


def batch_loss(model: Any, example: SFTExample, bf16: bool) -> float:
    """Mean cross-entropy of `model` on `example`'s trained (assistant) tokens, under bf16 autocast when `bf16`."""
    import torch

    ids = torch.tensor([example.input_ids])
    labels = torch.where(torch.tensor([example.assistant_masks]) == 1, ids, -100)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return float(model(input_ids=ids, labels=labels).loss)


def _timer() -> Any:
    from transformers import TrainerCallback

    class _Timer(TrainerCallback):
        """Counts tokens through the input embeddings; marks the end of the first step and of the last."""

        def __init__(self) -> None:
            self.tokens = 0
            self.marks: list[tuple[float, float, int]] = []
            self.losses: list[float] = []

        def count(self, module: Any, inputs: Any, output: Any) -> None:
            self.tokens += int(inputs[0].numel())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.marks.append((time.perf_counter(), time.process_time(), self.tokens))
            control.should_log = True

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return _Timer()


def training_speed(model_path: str | Path, examples: list[SFTExample], config: TrainConfig, steps: int,
                   precision: str) -> SpeedResult:
    """Train `steps` optimizer steps (at least 2) of `config` in `precision` (fp32 | bf16 | auto) on `examples`
    and time every step after the first. Nothing is saved; the model is freed before returning."""
    from agentkd.train.trainer import build_trainer, use_bf16

    if steps < 2:
        raise ValueError("training_speed times the steps after the first: give at least 2")
    settings = config.model_copy(update={"precision": precision, "max_steps": steps, "save_steps": steps + 1,
                                         "logging_steps": 1})
    timer = _timer()
    with tempfile.TemporaryDirectory(prefix="agentkd_speed_") as scratch:
        trainer = build_trainer(model_path, examples, settings, Path(scratch), callbacks=[timer])
        trainer.args.save_strategy = "no"
        hook = trainer.model.get_input_embeddings().register_forward_hook(timer.count)
        try:
            trainer.train()
        finally:
            hook.remove()
            del trainer
            gc.collect()
    (start, cpu_start, first_tokens), (end, cpu_end, tokens) = timer.marks[0], timer.marks[-1]
    return SpeedResult(precision="bf16" if use_bf16(precision) else "fp32", steps=steps,
                       timed_tokens=tokens - first_tokens, timed_seconds=end - start,
                       timed_cpu_seconds=cpu_end - cpu_start, losses=timer.losses)
