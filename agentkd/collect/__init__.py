"""Collection: run a teacher over tasks into a crash-safe, resumable run folder.

`collect`, `CollectStats` and `plan_jobs` are the local backend's (`agentkd.scale.local`), named here as well."""

from agentkd.scale.local import CollectStats, collect, plan_jobs

__all__ = ["CollectStats", "collect", "plan_jobs"]
