"""Demonstration store for in-context distillation: teacher steps in FAISS, searched by goal + state."""

from agentkd.store.demo_store import EMPTY_CONTEXT, DemoStore
from agentkd.store.embedders import LiteLLMEmbedder
from agentkd.store.errors import StoreError, StoreMismatchError
from agentkd.store.records import StepRecord, records_from_trajectory

__all__ = [
    "DemoStore",
    "EMPTY_CONTEXT",
    "LiteLLMEmbedder",
    "StepRecord",
    "StoreError",
    "StoreMismatchError",
    "records_from_trajectory",
]
