"""Improvement rounds (`agentkd improve`): probe the student on unseen train tasks → targeted teacher collection
→ SFT (+ DPO) → evaluate, each round in RUN/rounds/<k>/, resumable stage by stage.

Names are imported on first use, so reading round summaries (the report does) loads no agent or model stack."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ImproveSettings": "agentkd.rounds.settings",
    "RoundsError": "agentkd.rounds.settings",
    "RoundStage": "agentkd.rounds.stages",
    "next_stage": "agentkd.rounds.stages",
    "round_rows": "agentkd.rounds.summary",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'agentkd.rounds' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
