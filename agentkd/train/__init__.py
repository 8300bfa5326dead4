"""Fine-tuned distillation: filters, SFT data with assistant-only loss, TRL + LoRA training.

The names below are imported on first use, so that `agentkd.train.config` loads on its own (the command line
reads the training settings' defaults while it parses its arguments).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "agentkd.train.config": ("TrainConfig", "TrainConfigError", "resolve_config"),
    "agentkd.train.filters": ("FilterConfig", "FilterReport", "filter_trajectories"),
    "agentkd.train.sft_data": ("ChatTemplateError", "SFTExample", "student_conversation", "tokenize_conversation"),
    "agentkd.train.trainer": ("TrainingError", "TrainResult", "train_student"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkd.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from agentkd.train.config import TrainConfig, TrainConfigError, resolve_config
    from agentkd.train.filters import FilterConfig, FilterReport, filter_trajectories
    from agentkd.train.sft_data import ChatTemplateError, SFTExample, student_conversation, tokenize_conversation
    from agentkd.train.trainer import TrainingError, TrainResult, train_student
