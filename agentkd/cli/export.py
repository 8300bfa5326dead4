"""`agentkd export`: a run's trained student as one GGUF file for llama.cpp (the default), or the run's data as a
Hugging Face dataset (`--format hf|parquet|jsonl`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from agentkd.cli.common import RunOption, choice, console, exit_on_error, fail

DATA_FORMATS = ("hf", "parquet", "jsonl")


def export_command(
    run: RunOption,
    format: Annotated[str, typer.Option(
        "--format", **choice("gguf", *DATA_FORMATS),
        help="gguf (default): the trained student for llama.cpp | hf (datasets.save_to_disk) | parquet | "
             "jsonl: the run's data as a Hugging Face dataset with a dataset card.")] = "gguf",
    outtype: Annotated[str, typer.Option(
        "--type", **choice("f16", "q8_0", "f32"),
        help="gguf: weight type of the matrices: f16 (default: greedy-identical to transformers in the "
             "benchmark), q8_0 (about 15% faster, may tip near-ties), or f32.")] = "f16",
    student: Annotated[str, typer.Option(
        "--student", **choice("trained", "trained-dpo"),
        help="gguf: trained (RUN/student, the default) | trained-dpo (RUN/student-dpo, the preference "
             "stage).")] = "trained",
    base: Annotated[Optional[Path], typer.Option(
        "--base", help="gguf: GGUF of the student's base model, for its tokenizer and metadata (default: the GGUF its "
                       "base alias was made from; for another LLaMA folder, the packaged SmolLM2-135M-Instruct "
                       "GGUF).")] = None,
    what: Annotated[str, typer.Option(
        "--what", **choice("trajectories", "sft", "preferences"),
        help="Datasets: trajectories (every collected episode, full records) | sft (the filtered "
             "trajectories as the student's chat conversations) | preferences (step pairs from the run's "
             "evaluations).")] = "trajectories",
    split: Annotated[str, typer.Option(
        "--split", **choice("train", "test", "all"),
        help="Datasets: train | test | all (the tasks' splits).")] = "all",
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Datasets: output folder (default RUN/datasets/<what>/<format>).")] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="Datasets, sft: a training YAML whose `filters` decide which trajectories are kept.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Datasets: replace an earlier export in --out.")] = False,
) -> None:
    """Write RUN/student/merged as RUN/student/student.gguf (RUN/student-dpo/... with --student trained-dpo;
    `agentkd train` does this itself; use this to retry),
    or with --format hf|parquet|jsonl the run's trajectories / SFT conversations / preference pairs as a dataset
    (read back with `datasets`; train on it with `agentkd train --dataset`).

    Example: agentkd export --run runs/demo --format hf"""
    if format == "gguf":
        given = [flag for flag, value in (("--what", what != "trajectories"), ("--split", split != "all"),
                                          ("--out", out is not None), ("--config", config is not None),
                                          ("--overwrite", overwrite)) if value]
        if given:
            fail(f"{', '.join(given)} apply to dataset exports: add --format hf|parquet|jsonl", code=2)
        from agentkd.train.export import export_student

        with exit_on_error(), console.status(f"exporting the {student} student of {run} to GGUF ({outtype})..."):
            result = export_student(run, outtype=outtype, base=base, student=student)
        console.print(f"wrote {result.path} ({result.outtype}, {result.tensors} tensors, "
                      f"{result.bytes / 1e6:.0f} MB) in {result.seconds:.1f} s", soft_wrap=True)
        return
    from agentkd.train import resolve_config
    from agentkd.train.dataset_export import export_dataset

    with exit_on_error(), console.status(f"exporting {what} of {run} as {format}..."):
        filters = resolve_config(config).filters if config is not None else None
        path, meta = export_dataset(run, format, what, split, out, filters=filters, overwrite=overwrite)
    counts = ", ".join(f"{name} {n}" for name, n in meta.splits.items())
    console.print(f"wrote {what} ({counts}) to {path} with its dataset card {path / 'README.md'}", soft_wrap=True)
    if meta.filter_summary:
        console.print(f"filters: {meta.filter_summary}", soft_wrap=True)
