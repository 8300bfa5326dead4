"""The settings of `agentkd improve` and its error."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkd.collect.targets import GroupBy
from agentkd.errors import AgentKDError
from agentkd.policies.settings import AgreementMode, CascadeOptions
from agentkd.sampling import SFT_STUDENT_MAX_TOKENS, copy_field
from agentkd.sandbox.host import SandboxConfig
from agentkd.train.config import TrainConfig


class RoundsError(AgentKDError):
    """An improvement round cannot start or continue (no base run, a round started with other settings, ...)."""


class ImproveSettings(BaseModel):
    """What every round of `agentkd improve` does; recorded in each round's plan.json."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

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
    samples: int = copy_field(CascadeOptions, "samples")
    temperature: float = copy_field(CascadeOptions, "temperature")
    agreement: AgreementMode = copy_field(CascadeOptions, "agreement")
    max_tokens: int = Field(SFT_STUDENT_MAX_TOKENS, ge=1)
    """Tokens per step of the fine-tuned student."""
    concurrency: int = Field(2, ge=1)
    """Episodes run at once."""
    max_steps: int | None = Field(None, ge=1)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)

    @property
    def cascade(self) -> CascadeOptions:
        """The cascade's settings (the probe's, with `probe="cascade"`, and the evaluations')."""
        return CascadeOptions(samples=self.samples, temperature=self.temperature, agreement=self.agreement)

    def identity(self) -> dict[str, Any]:
        """What a round records and a resumed round must match (not how many rounds, not concurrency)."""
        return self.model_dump(mode="json", exclude={"rounds", "concurrency", "sandbox"})
