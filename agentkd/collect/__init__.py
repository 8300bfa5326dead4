"""Collection: run a teacher over tasks into a crash-safe, resumable run folder."""

from agentkd.collect.collector import CollectStats, collect, plan_jobs

__all__ = ["CollectStats", "collect", "plan_jobs"]
