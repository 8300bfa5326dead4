"""The settings of `agentkd improve` and its error."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkd.collect.targets import GroupBy
from agentkd.errors import AgentKDError
from agentkd.tools.sandbox import SandboxConfig
from agentkd.train.config import TrainConfig


class RoundsError(AgentKDError):
    """An improvement round cannot start or continue (no base run, a round started with other settings, ...)."""


class ImproveSettings(BaseModel):
    """What every round of `agentkd improve` does; recorded in each round's plan.json."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(2, ge=1)
    """Rounds after the base run (round 0). Raising it later adds rounds; finished rounds are kept as they are."""
    budget: int = Field(10, ge=1)
    """Teacher episodes collected per round."""
    probe_tasks: int = Field(20, ge=1)
    """Unseen train tasks the previous round's student is probed on (fresh ones each round)."""
    probe: Literal["student", "cascade"] = "student"
    """student: failures only, no teacher calls; cascade: failures and deferrals (the teacher acts on deferred steps)."""
    group_by: GroupBy = "template"
    dpo: bool = False
    """After SFT, train a DPO stage on the round's preference pairs and make it the round's student."""
    eval_tasks: int = Field(10, ge=1)
    """Held-out test tasks each round's student and cascade are evaluated on."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    samples: int = Field(3, ge=1)
    temperature: float = Field(0.7, ge=0)
    agreement: str = "result"
    max_tokens: int = Field(96, ge=1)
    concurrency: int = Field(2, ge=1)
    max_steps: int | None = Field(None, ge=1)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)

    def identity(self) -> dict[str, Any]:
        """What a round records and a resumed round must match (not how many rounds, not concurrency)."""
        return self.model_dump(mode="json", exclude={"rounds", "concurrency", "sandbox"})
