"""Collection: run a teacher over tasks into a crash-safe, resumable run folder."""

from agentkd.collect.collector import CollectStats, collect, plan_jobs
from agentkd.collect.run_folder import RunFolder

__all__ = ["CollectStats", "collect", "plan_jobs", "RunFolder"]
