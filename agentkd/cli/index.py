"""`agentkd index`: a FAISS store of a run's successful teacher steps."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from agentkd.cli.common import RunOption, console, exit_on_error
from agentkd.cli.progress import RichProgress


def index_command(
    run: RunOption,
    embedder: Annotated[Optional[str], typer.Option(
        "--embedder", help="A litellm embedding model (default: the packaged all-MiniLM-L6-v2).")] = None,
    window: Annotated[int, typer.Option("--window", min=0, help="Earlier steps shown with each demonstration.")] = 1,
    hnsw_threshold: Annotated[int, typer.Option(
        "--hnsw-threshold", min=1, help="Records from which HNSW replaces the exact flat index.")] = 20_000,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Start a new store instead of adding to the existing one.")] = False,
) -> None:
    """Build (or extend) RUN/index: a FAISS store of the run's successful teacher steps.

    Example: agentkd index --run runs/demo"""
    from agentkd.store.build import IndexJob

    with exit_on_error():
        result = IndexJob(run=run, embedder=embedder, window=window, hnsw_threshold=hnsw_threshold,
                          rebuild=rebuild).execute(RichProgress())
    meta = result.store.meta
    console.print(f"indexed {result.added} new steps in {result.seconds:.1f} s: {meta['count']} records, "
                  f"{meta['index']} index, {meta['embedder']} ({meta['dimension']} dims) in {result.path}")

