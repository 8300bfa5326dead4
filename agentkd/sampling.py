"""How a model is sampled for one step, and the defaults each role starts from.

`Sampling` defines the sampling settings once (bounds and help), as inspect_ai's GenerateConfig does; a policy
kind's settings take the fields they use with `sampling_field` and their own default. Pure data at the bottom of
the import graph: the model client, the policies and the command line read their defaults here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

TEACHER_MAX_TOKENS = 512
"""Tokens per step of a model acting with the full CodeAct prompt (a teacher), and of a model client by default."""
STUDENT_MAX_TOKENS = 256
"""Tokens per step of a student that has not been fine-tuned."""
SFT_STUDENT_MAX_TOKENS = 96
"""Tokens per step of a student `agentkd train` fine-tuned (it learnt short replies)."""
RESAMPLE_TEMPERATURE = 0.7
"""The temperature a reply that repeats the previous one for the same state is sampled again at."""


class Sampling(BaseModel):
    """How a model is asked for one step: how many replies, how random, how long, where they stop."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    samples: int = Field(1, ge=1)
    """Candidate steps sampled per step."""
    temperature: float = Field(0.0, ge=0.0)
    """Sampling temperature (0: greedy)."""
    max_tokens: int = Field(TEACHER_MAX_TOKENS, ge=1)
    """Max tokens per reply."""
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    """Nucleus sampling: draw from the most likely tokens that together hold this probability (None: all)."""
    stop: list[str] | None = None
    """Stop sequences (None: the policy's own, which end a reply after its first code block)."""

    def client_settings(self) -> dict[str, Any]:
        """The keyword arguments of `agentkd.models.client.ModelClient` these settings set."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "top_p": self.top_p}


def sampling_field(name: str, default: Any = ..., **overrides: Any) -> Any:
    """Field `name` of `Sampling` (its bounds and help) with another default: how a settings model takes a
    sampling setting without defining it again."""
    return copy_field(Sampling, name, default=default, **overrides)


def copy_field(model: type[BaseModel], name: str, **overrides: Any) -> Any:
    """Field `name` of `model` (default, bounds, help), with `overrides` (e.g. another `default`), for another model
    that holds the same setting."""
    if "default" in overrides and overrides["default"] is ...:
        del overrides["default"]
    return FieldInfo.merge_field_infos(model.model_fields[name], **overrides)
