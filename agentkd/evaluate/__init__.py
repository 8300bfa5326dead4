"""Evaluation: run a policy over a split, summarise success, cost by role, deferrals, break-even."""

from agentkd.evaluate.metrics import BreakEven, EvalReport, break_even, summarize, wilson_interval
from agentkd.evaluate.runner import eval_folder, evaluate

__all__ = ["BreakEven", "EvalReport", "break_even", "summarize", "wilson_interval", "evaluate", "eval_folder"]
