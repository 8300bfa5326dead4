"""Environment API: declare tasks, tools, grading and state; load by path or module."""

from agentkd.env.environment import Environment, Grade
from agentkd.env.graders import exact_match, f1_score, normalize_text, normalized_match, numeric_match
from agentkd.env.loading import load_environment, resolve_env_spec
from agentkd.env.tasks import TaskSet

__all__ = [
    "Environment", "Grade", "TaskSet", "load_environment", "resolve_env_spec",
    "exact_match", "f1_score", "normalize_text", "normalized_match", "numeric_match",
]
