"""Where episodes run: this process (asyncio, the default: `local`) or Ray actors across a cluster.

`run_episodes` is the one entry collect and eval use; the Ray parts (`ray_collect`, `ray_workers`,
`ray_cluster`) import Ray only when a job asks for it (`pip install agentkd[ray]`)."""

from agentkd.scale.backend import Backend, BackendError, RayUnavailableError
from agentkd.scale.episodes import limited_models, run_episodes
from agentkd.scale.local import CollectStats

__all__ = ["Backend", "BackendError", "CollectStats", "RayUnavailableError", "limited_models", "run_episodes"]
