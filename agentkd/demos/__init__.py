"""Demonstration store for in-context distillation: teacher steps in FAISS, searched by goal + state."""

from agentkd.demos.records import StepRecord, records_from_trajectory
from agentkd.demos.store import DemoStore, StoreError, StoreMismatchError

__all__ = ["DemoStore", "StepRecord", "StoreError", "StoreMismatchError", "records_from_trajectory"]
