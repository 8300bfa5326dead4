"""The settings of `agentkd bench icd`, each defined once (its default and help)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentkd.evaluate.prices import Price, StatedPrices
from agentkd.policies.names import GRAMMAR
from agentkd.policies.settings import ICD_STUDENT, ICDSettings, StudentSettings
from agentkd.sampling import copy_field
from agentkd.train.config import TrainConfig


class IcdBenchSettings(BaseModel):
    """What the in-context distillation experiment collects, which policies it compares where, how $ is counted."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    env: str = "factqa"
    """Environment: built-in name, path/to/env.py[:attr] or module:attr, with a train split."""
    teacher: str = "gguf/qwen2.5-coder-1.5b"
    """Teacher: a litellm model string or a local alias."""
    teacher_api_base: str | None = None
    """Base URL of a served teacher (`agentkd serve`)."""
    student: str = ICD_STUDENT
    """The frozen student (the base model of --sft)."""
    train: int = Field(60, ge=1)
    """Teacher episodes collected on the train split."""
    split: str = "test"
    """Where the policies are compared (a dev slice: train[a:b])."""
    n: int = Field(30, ge=1)
    """Tasks of --split every policy runs."""
    policies: str = Field("teacher,student,icd,cascade-code,cascade-result",
                          description=f"Comma-separated policy names; {GRAMMAR}")
    k: int = copy_field(ICDSettings, "k", description="Demonstrations per step (a -kK part of a name overrides it).")
    max_tokens: int = copy_field(StudentSettings, "max_tokens", description="Student tokens per step.")
    sft: bool = False
    """Fine-tune the student on the collected trajectories (for the sft policies)."""
    epochs: float = copy_field(TrainConfig, "epochs")
    concurrency: int = Field(1, ge=1)
    """Episodes run at once."""
    max_steps: int | None = Field(None, ge=1)
    """Override the environment's step limit."""
    teacher_price: Price = copy_field(StatedPrices, "teacher")
    student_price: Price = copy_field(StatedPrices, "student")
    partial: bool = False
    """Build the table now, on the tasks every evaluation has finished (others may still run)."""
    table_only: bool = False
    """Run nothing; build the table from what is there."""

    def policy_names(self) -> list[str]:
        """The names of `policies`, in order."""
        return [name.strip() for name in self.policies.split(",") if name.strip()]
