"""Improvement rounds (`agentkd improve`): probe the student on unseen train tasks → targeted teacher collection
→ SFT (+ DPO) → evaluate, each round in RUN/rounds/<k>/, resumable stage by stage."""

from agentkd.rounds.settings import ImproveSettings, RoundsError
from agentkd.rounds.stages import RoundStage, next_stage
from agentkd.rounds.summary import round_rows

__all__ = ["ImproveSettings", "RoundStage", "RoundsError", "next_stage", "round_rows"]
