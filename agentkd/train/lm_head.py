"""Which positions the student's LM head scores in training: only those whose next token is trained, on every device.

TRL's fused LM head (SFTTrainer) projects only the positions whose next-token label is trained (the assistant's
tokens) where Triton runs its kernel (CUDA, XPU). Elsewhere it projects every position, to keep tile shapes fixed
for compilers that would recompile for each batch; eager CPU training compiles nothing. In a CodeAct conversation
about 70% of the positions are the prompt and observations, and projecting them through the vocabulary (49k tokens
for SmolLM2, 152k for Qwen2.5) is a large part of a step: scoring only the trained positions trained SmolLM2-135M
at 1.25x and Qwen2.5-Coder-0.5B at 1.30x the tokens/s on 2 CPU cores, with the same step losses
(`benchmarks/bench_train_precision.py --compare head`).
"""

from __future__ import annotations

from typing import Any, Literal

HeadPositions = Literal["trained", "all"]
"""trained: the LM head scores only the positions whose next token is trained; all: TRL's choice for the device
(every position except under Triton)."""

_mode: HeadPositions = "all"


def score_positions(mode: HeadPositions) -> bool:
    """Make TRL's fused LM head score `mode`'s positions in this process (the trainers built from now on).

    Returns False when the installed TRL has no such switch (the head then scores what TRL chooses)."""
    global _mode
    import trl.trainer.utils as trl_utils

    device_choice = getattr(trl_utils, "_use_triton", None)
    if device_choice is None:
        return False
    if not getattr(device_choice, "agentkd_positions", False):
        def compact(device: Any) -> bool:
            return _mode == "trained" or device_choice(device)

        compact.agentkd_positions = True  # type: ignore[attr-defined]
        trl_utils._use_triton = compact
    _mode = mode
    return True
