"""Importing Ray and joining (or starting) the cluster a job runs on."""

from __future__ import annotations

import logging
from types import ModuleType

from agentkd.scale.backend import Backend, BackendError, RayUnavailableError


def import_ray() -> ModuleType:
    """The `ray` module, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError("--backend ray needs Ray: pip install 'agentkd[ray]' (or use the default "
                                  "--backend local)") from exc
    return ray


def connect(backend: Backend) -> bool:
    """Join `backend.address`; with None, Ray's own default: $RAY_ADDRESS, else the cluster `ray start` runs on
    this machine, else a local instance started for the job. True when this call made the connection (the
    caller shuts it down after the job); False when Ray was already initialised in this process."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=backend.address, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=True, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {backend.address!r}" if backend.address else "a local Ray instance"
        raise BackendError(f"could not connect to {where}: {exc}. Start one with `ray start --head` and pass "
                           "--ray-address auto (this machine) or HEAD_IP:6379, or leave --ray-address out to "
                           "start a local one. A cluster with token authentication (Ray's default) also needs "
                           "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<`ray get-auth-token` on the head> in the "
                           "environment of the command") from exc
    return True


def cluster_cpus() -> float:
    """CPUs the connected cluster offers to schedule workers on."""
    return float(import_ray().cluster_resources().get("CPU", 0.0))


def check_capacity(backend: Backend, workers: int) -> None:
    """Refuse before starting anything when the cluster cannot place `workers` workers at once."""
    need, have = workers * backend.cpus_per_worker, cluster_cpus()
    if need > have + 1e-9:
        raise BackendError(f"{workers} Ray workers need {need:g} CPUs ({backend.cpus_per_worker:g} each) but the "
                           f"cluster has {have:g}: pass fewer --workers, or add nodes (`ray start --address "
                           "HEAD_IP:6379` on each)")
