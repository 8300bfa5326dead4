"""Pydantic records: Task, Usage, Step, Trajectory. Schema-versioned, JSON round-trippable."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from agentkd.specs import PolicySpec

SCHEMA_VERSION = 5
"""2 added `Trajectory.policy_spec`; 3 typed `Step.vote`, `Step.resampled` and `Step.injected` (same keys as the
dicts versions 1 and 2 wrote, so older lines read as they are); 4 added tool-call actions (`Step.tool_calls`,
`Trajectory.tools`) and recorded-then-graded episodes (`Trajectory.graded`, `Trajectory.revision`); 5 added
`Vote.repeated` and `Trajectory.stopped_usage` (the priced calls of a stuck episode's last reply). Each new field
is written only when set, so an older line reads as it is."""

Role = Literal["teacher", "student", "reference", "system"]
Status = Literal["finished", "step_limit", "error", "stuck"]
"""stuck: the model kept repeating its reply to an unchanged state (see agentkd.policies.repeats)."""
AgreementMode = Literal["code", "result", "majority", "confidence"]
"""How a cascade decides: sampled candidates compared by identical normalised code, identical trial results, or
identical code for a majority (see agentkd.policies.agreement); or one sample accepted when its action tokens'
probability reaches a threshold (confidence, see agentkd.policies.confidence)."""


class Task(BaseModel):
    """One problem an agent must solve."""

    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: str
    answer: Any = None
    split: str = "train"
    metadata: dict[str, Any] = Field(default_factory=dict)


class Usage(BaseModel):
    """Token usage and dollar cost of one or more model calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    cached_prompt_tokens: int = 0
    """The part of prompt_tokens the model server read from its prompt cache (as it reports them; 0 if it does not):
    APIs with prompt caching bill these for less."""
    cache_write_tokens: int = 0
    """The part of prompt_tokens written to the provider's prompt cache (Anthropic reports and bills them); recorded
    only when set."""
    counted_by: str | None = None
    """Set when no model server reported these tokens and agentkd counted them (the reference solver's steps, priced
    as a model teacher would spend them): which tokenizer counted. Recorded only when set."""

    @model_serializer(mode="wrap")
    def _recorded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if not self.cache_write_tokens:  # recorded as before these fields existed
            data.pop("cache_write_tokens", None)
        if self.counted_by is None:
            data.pop("counted_by", None)
        return data

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            calls=self.calls + other.calls,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            counted_by=self.counted_by or other.counted_by,
        )


class Vote(BaseModel):
    """How a step's sampled candidates agreed (cascade and self-consistent steps)."""

    model_config = ConfigDict(extra="forbid")

    mode: AgreementMode
    """The agreement the candidates were compared by (`code` when result agreement fell back)."""
    accepted: bool
    """Whether the largest group reached `needed` (a cascade step the student then took)."""
    winner_index: int | None
    """Index of the first candidate of the largest group; None when no candidate was usable."""
    winner_count: int
    """Size of the largest group."""
    needed: int
    """Group size required to accept."""
    group_sizes: list[int]
    """Sizes of the groups of equal candidates, largest first."""
    unusable: int
    """Candidates without a key (no parseable code, or an erroring trial)."""
    deferrable: bool = True
    """False for self-consistent steps: no teacher could have taken them over."""
    warning: str | None = None
    """One line saying why result agreement fell back to code agreement."""
    confidence: float | None = None
    """Confidence mode: the geometric mean probability of the sample's action tokens (None: it had no code, or the
    model gave no log-probabilities). Recorded only when set."""
    threshold: float | None = None
    """Confidence mode: the confidence a sample needed to be accepted. Recorded only when set."""
    matches_teacher: bool | None = None
    """Calibration steps: whether the student's action gave the same result as the teacher's on the same state.
    Recorded only when set."""
    repeated: bool | None = None
    """Cascade steps: the student's chosen action repeated its reply to the same state, so the step went to the
    teacher however the candidates agreed (`on_repeat="teacher"`). Recorded only when set."""

    @model_serializer(mode="wrap")
    def _recorded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name in ("confidence", "threshold", "matches_teacher", "repeated"):  # recorded as before these fields existed
            if data.get(name) is None:
                data.pop(name, None)
        return data


class Resample(BaseModel):
    """What the repeated-reply guard did on a step whose first reply repeated the previous one."""

    model_config = ConfigDict(extra="forbid")

    reason: str
    temperature: float
    """The temperature of the resample."""
    attempts: int
    """Resamples drawn until one did not repeat."""


class Injection(BaseModel):
    """A step slipped on purpose to show a recovery (`agentkd collect --recovery`)."""

    model_config = ConfigDict(extra="forbid")

    original: str
    """The teacher's own code, which the slip replaced."""
    kind: str
    """What was slipped, e.g. `misspelt argument`."""


class ToolCall(BaseModel):
    """One call of a JSON tool (the OpenAI `tool_calls` format): which tool, with which arguments."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: str = "{}"
    """The arguments as the model wrote them: a JSON object as text (possibly invalid JSON: recorded as written)."""
    id: str | None = None
    """The call id the model server gave it (tool results name it in `tool_call_id`)."""

    def parsed_arguments(self) -> Any:
        """The arguments as data; the text itself when it is not valid JSON."""
        try:
            return json.loads(self.arguments)
        except ValueError:
            return self.arguments


class Step(BaseModel):
    """One think -> act -> observe step of an episode."""

    index: int
    role: Role
    model: str | None = None
    output: str
    """The raw text the policy produced (thought + code block)."""
    thought: str = ""
    action: str | None = None
    """The code that was executed, or None when the output could not be parsed (or the step's action is
    `tool_calls`)."""
    tool_calls: list[ToolCall] | None = None
    """The step's action when it is a list of JSON tool calls (an agent served through `agentkd gateway`) instead of
    CodeAct code; None for CodeAct steps and for a plain reply. Recorded only when set."""
    parse_error: str | None = None
    observation: str = ""
    execution_error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    execution_s: float = 0.0
    candidates: list[str] | None = None
    """Sampled candidate outputs, for cascade / self-consistent steps."""
    vote: Vote | None = None
    resampled: Resample | None = None
    """Set when the first reply repeated the previous one for the same state and was resampled; `output` is the
    resample."""
    role_usage: dict[str, Usage] = Field(default_factory=dict)
    """Usage per role when several roles spent tokens on this step (a cascade step that the
    student sampled and the teacher then took). Empty means all of `usage` is `role`'s."""
    injected: Injection | None = None
    """Set on a step slipped on purpose to show a recovery (`agentkd collect --recovery`): holds the teacher's
    `original` code. Training shows such a step but never trains on it; the store skips it."""

    @model_serializer(mode="wrap")
    def _recorded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if self.tool_calls is None:  # recorded as before tool-call actions existed
            data.pop("tool_calls", None)
        return data

    @property
    def action_kind(self) -> Literal["code", "tool_calls"] | None:
        """What the step's action is: CodeAct `code`, a list of `tool_calls`, or None (a plain reply, or an
        unparsable one)."""
        if self.tool_calls:
            return "tool_calls"
        return "code" if self.action is not None else None

    def usage_split(self) -> dict[str, Usage]:
        """This step's usage by role."""
        return dict(self.role_usage) if self.role_usage else {self.role: self.usage}

    @property
    def deferred(self) -> bool:
        """True for a cascade step the student's samples disagreed on (the teacher acted)."""
        return self.vote is not None and self.vote.deferrable and not self.vote.accepted

    @property
    def cascaded(self) -> bool:
        """True for a step a cascade decided (student samples voted; the teacher could have taken it).
        Self-consistent steps also carry a vote, but nobody could take them over."""
        return self.vote is not None and self.vote.deferrable


class Trajectory(BaseModel):
    """A full episode: the task, every step, the final answer and its grade."""

    schema_version: int = SCHEMA_VERSION
    task: Task
    sample_index: int = 0
    policy: str
    """Display name of the acting policy, e.g. `cascade:hf/smollm2-135m+teacher:reference`."""
    policy_spec: PolicySpec | None = None
    """The acting policy as data (rebuild it with `agentkd.build_policy`); None for policies without a spec."""
    messages: list[dict[str, Any]] = Field(default_factory=list)
    """The conversation as the acting policy saw it (system, user, assistant, ...)."""
    tools: list[dict[str, Any]] | None = None
    """The JSON tool definitions the model was offered (OpenAI `tools` format), for episodes whose actions are tool
    calls; None for CodeAct episodes. Recorded only when set."""
    steps: list[Step] = Field(default_factory=list)
    final_answer: Any = None
    status: Status = "finished"
    error: str | None = None
    score: float = 0.0
    success: bool = False
    parse_errors: int = 0
    usage: Usage = Field(default_factory=Usage)
    stopped_usage: dict[str, Usage] = Field(default_factory=dict)
    """By role, the calls that ended the episode without becoming a step (a stuck episode's repeated replies and
    their resamples): paid for, so counted in `usage` and priced with the steps. Recorded only when set."""
    duration_s: float = 0.0
    started_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    versions: dict[str, str] = Field(default_factory=dict)
    graded: bool = True
    """False for an episode recorded before its outcome is known (`agentkd gateway` records an episode at once and
    grades it when feedback arrives): `score` and `success` mean nothing yet, and training skips it."""
    revision: int = Field(0, ge=0)
    """0 for an episode written once. An episode that grows or is graded after it was first written (`agentkd
    gateway`) is appended again with revision 1, 2, ...: a later revision of the same key replaces the earlier one
    when the run is read (`RunFolder.iter_trajectories`), so the file stays append-only."""

    @model_serializer(mode="wrap")
    def _recorded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name, default in (("tools", None), ("graded", True), ("revision", 0), ("stopped_usage", {})):
            if data.get(name, default) == default:  # recorded as before these fields existed
                data.pop(name, None)
        return data

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {version} was written by a newer agentkd (this one reads up to "
                             f"{SCHEMA_VERSION}); upgrade agentkd to read it")
        return version

    @property
    def key(self) -> tuple[str, int]:
        """Identity of this episode inside a run folder: (task id, sample index)."""
        return (self.task.id, self.sample_index)

    def usage_by_role(self) -> dict[str, Usage]:
        """Usage summed per acting role (teacher / student / reference), with the calls that stopped the episode."""
        out: dict[str, Usage] = {}
        for split in [*(step.usage_split() for step in self.steps), self.stopped_usage]:
            for role, usage in split.items():
                out[role] = out.get(role, Usage()) + usage
        return out
