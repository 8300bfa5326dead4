"""`agentkd index` as a library call: build or extend RUN/index from the run's teacher trajectories
(`IndexJob(run=...).execute()`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from agentkd.jobs import SILENT, Progress
from agentkd.run.folder import RunFolder
from agentkd.store.demo_store import DemoStore
from agentkd.store.errors import StoreError


class IndexJob(BaseModel):
    """Index a run's successful teacher steps (re-running adds only new trajectories)."""

    model_config = ConfigDict(extra="forbid")

    run: Path
    embedder: str | None = Field(None, description="a litellm embedding model (default: the packaged MiniLM)")
    window: int = Field(1, ge=0)
    hnsw_threshold: int = Field(20_000, ge=1)
    rebuild: bool = False

    def execute(self, progress: Progress = SILENT) -> IndexResult:
        """Index, each phase reported to `progress` as a status line; StoreError when there is nothing to index."""
        progress.status("indexing...")
        try:
            return index_run(self, on_status=progress.status)
        finally:
            progress.done()


@dataclass
class IndexResult:
    store: DemoStore
    added: int
    trajectories: int
    seconds: float
    path: Path


def index_run(job: IndexJob, on_status: Callable[[str], None] = lambda message: None) -> IndexResult:
    """Build (or extend) RUN/index; StoreError when there is nothing to index. `on_status` hears each phase."""
    from agentkd.store.embedders import LiteLLMEmbedder

    folder = RunFolder(job.run)
    folder.identity()  # a clear error when this is not a run folder
    target = folder.layout.index_dir
    trajectories = list(folder.iter_trajectories())
    embedder = LiteLLMEmbedder(job.embedder) if job.embedder else None
    exists = (target / "meta.json").is_file() and not job.rebuild
    on_status("loading the embedder and the store...")
    store = DemoStore.load(target, embedder) if exists else DemoStore(embedder, job.hnsw_threshold, job.window)
    started = time.perf_counter()
    on_status(f"embedding the teacher steps of {len(trajectories)} trajectories...")
    added = store.add_trajectories(trajectories)
    if not len(store):
        raise StoreError(f"{job.run} has no successful teacher trajectory to index; collect some first")
    store.save(target)
    return IndexResult(store, added, len(trajectories), time.perf_counter() - started, target)
