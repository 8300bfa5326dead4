"""`agentkd train`: fine-tune a student on a run's filtered trajectories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from agentkd.cli.common import choice, console, exit_on_error, fail, field_option, run_folder
from agentkd.cli.progress import RichProgress
from agentkd.train.config import TrainConfig


def train_command(
    run: Annotated[Path, typer.Option(
        "--run", callback=run_folder,
        help="Run folder made by `agentkd collect`; the student is written to RUN/student/.")],
    stage: Annotated[str, typer.Option(
        "--stage", **choice("sft", "dpo"),
        help="sft (the filtered trajectories) | dpo (preference pairs from the run's evaluations, on top "
             "of the SFT student; writes RUN/student-dpo/, use it with --student trained-dpo).")] = "sft",
    student: Optional[str] = field_option(TrainConfig, "student", scope="Base student", unset=True),
    epochs: Optional[float] = field_option(TrainConfig, "epochs", unset=True),
    lr: Optional[float] = field_option(TrainConfig, "lr", unset=True),
    lora_r: Optional[int] = field_option(TrainConfig, "lora_r", unset=True),
    max_trajectories: Optional[int] = field_option(TrainConfig, "max_trajectories", unset=True),
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="YAML file with training settings (keys of agentkd.TrainConfig); options given here override it.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in RUN/student/checkpoints.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete an existing RUN/student and train again.")] = False,
    dataset: Annotated[Optional[Path], typer.Option(
        "--dataset", help="Train on the train split of an `agentkd export` (trajectories or sft; hf, parquet or jsonl) "
                          "instead of RUN/trajectories.jsonl; a new RUN gets the export's env and teacher.")] = None,
    max_steps: Optional[int] = field_option(TrainConfig, "max_steps", unset=True),
) -> None:
    """Fine-tune a student on RUN's filtered trajectories (TRL SFTTrainer + LoRA; CUDA bf16 when present).

    Several GPUs (or CPU processes): `accelerate launch [--config_file configs/accelerate/multi_gpu.yaml]
    -m agentkd.cli train --run RUN ...`; one process writes RUN/student.

    Example: agentkd train --run runs/demo --epochs 2"""
    from agentkd.train import resolve_config
    from agentkd.train.job import TrainJob

    if dataset is not None and stage != "sft":
        fail("--dataset trains the sft stage; the dpo stage builds its pairs from RUN's evaluations", code=2)
    with exit_on_error():
        settings = resolve_config(config, student=student, epochs=epochs, lr=lr, lora_r=lora_r,
                                  max_trajectories=max_trajectories, max_steps=max_steps)
        result = TrainJob(run=run, stage=stage, config=settings, resume=resume, overwrite=overwrite,
                          dataset=dataset).execute(RichProgress())
    if result.rank != 0:  # under `accelerate launch` the main process reports; the others say they finished
        console.print(f"rank {result.rank}/{result.processes}: trained its shard ({result.examples} conversations "
                      "in the data); the main process wrote the student")
        return
    loss = f"{result.final_loss:.3f}" if result.final_loss is not None else "n/a"
    processes = f" on {result.processes} processes" if result.processes > 1 else ""
    console.print(f"trained on {result.examples} conversations{processes} in {result.seconds:.0f} s "
                  f"({result.tokens_per_s:.0f} tokens/s), final loss {loss}")
    alias = "trained-dpo" if stage == "dpo" else "trained"
    console.print(f"student: {result.merged_dir} (use it with --student {result.merged_dir} or --student {alias})")
    if result.gguf is not None:
        console.print(f"llama.cpp: {result.gguf}")
    else:
        retry = f"agentkd export --run {run}" + (" --student trained-dpo" if stage == "dpo" else "")
        console.print(f"[bold yellow]warning:[/] the GGUF export for llama.cpp failed ({result.gguf_error}); the "
                      f"trained weights are safe in {result.merged_dir}; retry with `{retry}`", soft_wrap=True)

