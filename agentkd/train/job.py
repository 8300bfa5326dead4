"""`agentkd train` as data: which run, which settings, resume or overwrite."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkd.train.config import TrainConfig


class TrainJob(BaseModel):
    """Fine-tune a student on RUN's filtered trajectories into RUN/student/ (see `train_student`)."""

    model_config = ConfigDict(extra="forbid")

    run: Path
    stage: Literal["sft", "dpo"] = "sft"
    """sft: supervised fine-tuning on the filtered trajectories; dpo: preference pairs on top of the SFT student."""
    config: TrainConfig = Field(default_factory=TrainConfig)
    dataset: Path | None = None
    """An `agentkd export` (trajectories or sft) to train on instead of RUN/trajectories.jsonl (sft stage only)."""
    resume: bool = False
    overwrite: bool = False
