"""`agentkd train` as a library call: which run, which settings, resume or overwrite (`job.execute()`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkd.jobs import SILENT, Progress, stopping_cleanly
from agentkd.train.config import TrainConfig

if TYPE_CHECKING:
    from agentkd.env.environment import Environment
    from agentkd.train.trainer import TrainResult


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

    def prepare(self) -> Environment | None:
        """The environment the student is trained for: the one the export (`dataset`) records, else the run's; None
        for a run recorded by `agentkd gateway` (its tool-call episodes carry their own tool definitions)."""
        from agentkd.env.loading import load_environment
        from agentkd.run.folder import RunFolder
        from agentkd.specs import EnvSpec

        if self.dataset is None:
            folder = RunFolder(self.run)
            if not folder.records_environment() and folder.read_config() is not None:
                return None
            return load_environment(folder.env_spec())
        from agentkd.train.dataset_export import DatasetExportError, read_meta

        meta = read_meta(self.dataset)
        if not meta.env:
            raise DatasetExportError(f"{self.dataset} records no environment; export it again with this agentkd")
        return load_environment(EnvSpec.model_validate(meta.env))

    def execute(self, progress: Progress = SILENT) -> TrainResult:
        """Train, reported to `progress` (steps and loss, what the filters kept, the SFT data); under `accelerate
        launch` only the main process reports. TrainingError (checkpoints are kept) or JobInterrupted."""
        from agentkd.train.dpo import train_dpo
        from agentkd.train.trainer import train_student

        environment = self.prepare()
        main_process = int(os.environ.get("RANK", "0")) == 0
        shown = progress if main_process else SILENT

        def show_data(report: Any, examples: list) -> None:
            shown.note(f"filters: {report.summary()}")
            tokens = sum(len(e.input_ids) for e in examples)
            shown.note(f"SFT data: {len(examples)} conversations, {tokens} tokens "
                       f"({sum(e.trained_tokens for e in examples)} assistant tokens trained on)")

        def update(step: int, total: int, logs: dict) -> None:
            shown.update(step, total, "loss " + (f"{logs['loss']:.3f}" if "loss" in logs else "-"))

        shown.start("train", None, "loss -")
        with stopping_cleanly(shown, "", f"continue from the last checkpoint with `agentkd train --run {self.run} "
                                         "--resume`"):
            if self.stage == "dpo":
                result = train_dpo(self.run, environment, self.config, overwrite=self.overwrite, on_progress=update,
                                   on_pairs=lambda counts: progress.note(
                                       "preference pairs: " + ", ".join(f"{n} {k}" for k, n in counts.items())))
            else:
                result = train_student(self.run, environment, self.config, resume=self.resume,
                                       overwrite=self.overwrite, on_progress=update if main_process else None,
                                       on_data=show_data, dataset=self.dataset)
        shown.done()
        return result
