"""The backend settings of a job that runs episodes: local asyncio, or Ray workers (and which cluster)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentkd.errors import AgentKDError


class BackendError(AgentKDError):
    """The Ray backend cannot run the job (no cluster, workers that cannot start or keep dying)."""


class RayUnavailableError(BackendError):
    """`--backend ray` was asked for but Ray is not installed."""


class Backend(BaseModel):
    """Where a job's episodes run. Not part of a run's identity: a run started on one backend resumes on another."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="Ray cluster to join (host:6379, ray://host:10001, 'auto'); "
                                                   "None: $RAY_ADDRESS, a cluster running here, else a local one")
    workers: int = Field(2, ge=1, description="Ray actors; each runs the job's `concurrency` episodes at once")
    cpus_per_worker: float = Field(0.5, ge=0, description="CPUs Ray reserves per worker (episodes mostly wait)")
    max_restarts: int = Field(3, ge=0, description="replacements per worker before the job stops")
    start_timeout_s: float = Field(300.0, gt=0, description="seconds a worker may take to start and build the job")

    @model_validator(mode="after")
    def _ray_only_options(self) -> Backend:
        if self.kind == "local" and self.address is not None:
            raise ValueError("a Ray address needs the Ray backend: add --backend ray")
        return self
