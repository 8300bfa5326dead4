"""`agentkd train` as data: which run, which settings, resume or overwrite."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agentkd.train.config import TrainConfig


class TrainJob(BaseModel):
    """Fine-tune a student on RUN's filtered trajectories into RUN/student/ (see `train_student`)."""

    model_config = ConfigDict(extra="forbid")

    run: Path
    config: TrainConfig = Field(default_factory=TrainConfig)
    resume: bool = False
    overwrite: bool = False
