"""Evaluation: run a policy over a split, summarise success, cost by role, deferrals, break-even.

Names are imported on first use, so that `agentkd.evaluate.metrics` (pure arithmetic) loads without the
agent stack that running evaluations needs."""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "BreakEven": "metrics", "EvalReport": "metrics", "break_even": "metrics", "summarize": "metrics",
    "wilson_interval": "metrics", "evaluate": "runner", "eval_folder": "runner",
}
__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'agentkd.evaluate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agentkd.evaluate.{_MODULE_OF[name]}"), name)
