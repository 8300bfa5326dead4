"""`agentkd export`: write a run's trained student as one GGUF file for llama.cpp."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from agentkd.cli.common import RunOption, console, exit_on_error


def export_command(
    run: RunOption,
    outtype: Annotated[str, typer.Option(
        "--type", help="Weight type of the matrices: f16 (default: greedy-identical to transformers in the benchmark), "
                       "q8_0 (about 15% faster, may tip near-ties), or f32.")] = "f16",
    base: Annotated[Optional[Path], typer.Option(
        "--base", help="GGUF of the student's base model, for its tokenizer and metadata (default: the packaged "
                       "SmolLM2-135M-Instruct GGUF).")] = None,
) -> None:
    """Write RUN/student/merged as RUN/student/student.gguf (`agentkd train` does this itself; use this to retry)."""
    from agentkd.train.export import export_student

    with exit_on_error(), console.status(f"exporting {run}/student/merged to GGUF ({outtype})..."):
        result = export_student(run, outtype=outtype, base=base)
    console.print(f"wrote {result.path} ({result.outtype}, {result.tensors} tensors, "
                  f"{result.bytes / 1e6:.0f} MB) in {result.seconds:.1f} s", soft_wrap=True)
