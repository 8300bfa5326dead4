"""Fine-tuned distillation: filters, SFT data with assistant-only loss, TRL + LoRA training."""

from agentkd.train.config import TrainConfig, TrainConfigError, resolve_config
from agentkd.train.filters import FilterConfig, FilterReport, filter_trajectories
from agentkd.train.sft_data import ChatTemplateError, SFTExample, student_conversation, tokenize_conversation
from agentkd.train.trainer import TrainingError, TrainResult, train_student

__all__ = [
    "TrainConfig", "TrainConfigError", "resolve_config", "FilterConfig", "FilterReport", "filter_trajectories",
    "ChatTemplateError", "SFTExample", "student_conversation", "tokenize_conversation", "TrainingError",
    "TrainResult", "train_student",
]
