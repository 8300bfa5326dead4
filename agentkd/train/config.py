"""The training configuration: defaults, YAML files and command-line overrides, resolved into one record."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentkd.errors import AgentKDError
from agentkd.policies.settings import DEFAULT_STUDENT
from agentkd.train.filters import FilterConfig
from agentkd.train.lm_head import HeadPositions


class TrainConfigError(AgentKDError):
    """A training configuration file or option is invalid."""


class DPOSettings(BaseModel):
    """The preference stage (`agentkd train --stage dpo`): TRL's DPOTrainer with LoRA on the SFT student."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(0.1, gt=0)
    """Strength of the pull towards the SFT student (the reference model)."""
    loss_type: str = "sigmoid"
    """TRL's DPO loss (sigmoid = DPO; also ipo, robust, ...)."""
    epochs: float = Field(1.0, gt=0)
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(4, ge=1)
    include_test: bool = False
    """Use pairs from evaluations on the test split (off: that would tune on test tasks)."""


class TrainConfig(BaseModel):
    """Everything `agentkd train` needs; written to RUN/student/config.yaml as resolved."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    student: str = DEFAULT_STUDENT
    """A trainable alias (smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b: made once from its GGUF) or a
    folder holding a Hugging Face causal LM."""
    epochs: float = Field(2.0, gt=0)
    """Passes over the data."""
    lr: float = Field(1e-3, gt=0)
    """Peak learning rate (cosine schedule by default)."""
    lora_r: int = Field(32, ge=0)
    """LoRA rank; 0 trains all weights (full fine-tuning)."""
    lora_alpha: int | None = None
    """Default: 2 * lora_r."""
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    batch_size: int = Field(8, ge=1)
    """Conversations per optimizer step (per device)."""
    micro_batch_size: int = Field(1, ge=1)
    """Conversations per forward pass; batch_size / micro_batch_size passes are accumulated. One is fastest
    on a CPU (measured: 293 tokens/s vs 213 with 2 and 173 with 4 on 2 cores); raise it on a GPU."""
    scheduler: str = "cosine"
    warmup_steps: int = Field(3, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    padding_free: bool = True
    """With micro_batch_size > 1 and flash-attention: concatenate a micro-batch into one row (no pad tokens,
    attention kept per conversation). Otherwise micro-batches are padded, grouped by length."""
    gradient_checkpointing: bool = False
    head_positions: HeadPositions = "trained"
    """trained: the LM head scores only the positions whose next token is trained (1.25x–1.30x the tokens/s on a
    2-core CPU, the same loss); all: every position on a CPU, as TRL does there (agentkd.train.lm_head)."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto: bf16 on CUDA; on a CPU, fp32 weights under bf16 autocast where it has native bf16 matrix
    instructions (AMX or AVX-512 BF16), fp32 otherwise. Chosen when training starts."""
    max_trajectories: int | None = Field(None, ge=1)
    """Train on at most this many filtered trajectories."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps, in either stage (overrides epochs; for smoke tests of a setup, e.g.
    multi-GPU)."""
    seed: int = 0
    logging_steps: int = Field(5, ge=1)
    save_steps: int = Field(20, ge=1)
    """Checkpoint every this many optimizer steps (what `--resume` continues from)."""
    filters: FilterConfig = Field(default_factory=FilterConfig)
    dpo: DPOSettings = Field(default_factory=DPOSettings)

    @model_validator(mode="after")
    def _micro_batch_divides(self) -> "TrainConfig":
        if self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of micro_batch_size ({self.micro_batch_size})")
        return self

    @property
    def gradient_accumulation(self) -> int:
        return self.batch_size // self.micro_batch_size

    @property
    def alpha(self) -> int:
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_r


def resolve_config(file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the YAML file, then the non-None command-line overrides."""
    values: dict[str, Any] = {}
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise TrainConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TrainConfigError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise TrainConfigError(f"{path} must hold a mapping of settings (student: ..., epochs: ...)")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise TrainConfigError(f"invalid training settings: {problems} (see `agentkd train --help`)") from exc
