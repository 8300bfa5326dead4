"""The settings of every built-in policy kind: each setting, its default and its help, written once.

The policy modules build from these models, `agentkd eval` / `collect` / `pipeline` / `improve` take their option
defaults and help from them, and the jobs copy their fields. Importing this module loads pydantic only, so the
command line can read it while it parses its arguments. Recorded specs keep their shape: a setting added later
(`top_p`, `stop`, `code_before_end`) is left out of a spec while it is off, so older records still match.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from agentkd.records import AgreementMode
from agentkd.run.layout import is_trained_student
from agentkd.sampling import STUDENT_MAX_TOKENS, TEACHER_MAX_TOKENS, Sampling, sampling_field
from agentkd.specs import PolicySpec

DEFAULT_STUDENT = "smollm2-135m"
"""The student evaluated, deployed and fine-tuned when none is named."""
ICD_STUDENT = "gguf/qwen2.5-coder-0.5b"
"""The frozen student of in-context distillation: the smallest real local LLM that follows demonstrations
(installed by setup.sh); SmolLM2-135M solves nothing with them."""
OBSERVATION_PREFILL = "Thought: The observation shows"
"""How an untrained student's reply after an observation starts: small models given only `Thought:` there tend to
copy their previous reply word for word (the same search again); starting the thought from the observation makes
them read it (on a factqa dev slice the 0.5B then answered the single-hop questions it had looped on)."""

DemoLayout = Literal["system", "cached"]
"""Where an ICD student's demonstrations go in its prompt (see ICDSettings.demo_layout)."""

_OFF_UNTIL_SET = ("top_p", "stop")
"""Settings recorded only when set, so that specs recorded before they existed still match."""


def _without_unset(data: dict[str, Any]) -> dict[str, Any]:
    for name in _OFF_UNTIL_SET:
        if name in data and data[name] is None:
            del data[name]
    return data


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class LLMSettings(_Settings):
    """Settings of the `llm` kind: a model acting with the full CodeAct prompt (a teacher, usually)."""

    model: str = Field(description="litellm model string or local alias")
    role: Literal["teacher", "student"] = "teacher"
    temperature: float = sampling_field("temperature", 0.0)
    max_tokens: int = sampling_field("max_tokens", TEACHER_MAX_TOKENS)
    top_p: float | None = sampling_field("top_p")
    stop: list[str] | None = sampling_field("stop")
    api_base: str | None = None
    """Base URL of an OpenAI-compatible server for the model."""
    first_thought: str | None = None
    """Forced beginning of the model's first thought."""

    @model_serializer(mode="wrap")
    def _recorded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_unset(handler(self))

    @property
    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, max_tokens=self.max_tokens, top_p=self.top_p, stop=self.stop)


class StudentSettings(_Settings):
    """Settings of the `student` kind: a small model acting alone."""

    model: str = DEFAULT_STUDENT
    """Student model: local alias, a model folder, hf/<folder>, a litellm string, or 'trained' (RUN/student/merged
    from `agentkd train`)."""
    max_tokens: int = sampling_field("max_tokens", STUDENT_MAX_TOKENS)
    temperature: float = sampling_field("temperature", 0.0)
    top_p: float | None = sampling_field("top_p")
    stop: list[str] | None = sampling_field("stop")
    api_base: str | None = None
    """Base URL of an OpenAI-compatible server for the student (e.g. `agentkd serve`)."""
    prompt: Literal["auto", "full", "short"] = "auto"
    """auto: the short student prompt for a student `agentkd train` wrote, the full CodeAct prompt otherwise."""
    history_steps: int | None = Field(None, ge=0)
    """Show only the task and the last this many (reply, observation) pairs (long episodes); unset: all."""
    observation_prefill: str | None = OBSERVATION_PREFILL
    """How the reply after an observation starts (the full prompt only; a fine-tuned student keeps `Thought:`)."""
    code_followup: bool = True
    """A reply that ends after its thought with no code block is continued once from an opened python fence
    (the full prompt only). Untrained small students often stop after the thought: in the 0.5B's cascade on
    factqa 41% of the samples had no code, and they caused 53 of its 66 deferrals."""
    code_before_end: bool = False
    """The model may not end its turn before it opens a code block (the full prompt only; honoured by in-process
    llama.cpp students, ignored by other providers): the code comes in the same call instead of a follow-up call
    that sends the whole prompt again."""

    @model_serializer(mode="wrap")
    def _without_unused_settings(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A fine-tuned student never uses the observation prefill: leaving it out of its recorded spec keeps the
        # identity of its evaluations recorded before the setting existed, so they still resume.
        data = _without_unset(handler(self))
        if self.prompt == "short" or (self.prompt == "auto" and is_trained_student(self.model)):
            data.pop("observation_prefill", None)
            data.pop("code_followup", None)
        if not self.code_before_end:  # off: recorded as before the setting existed
            data.pop("code_before_end", None)
        return self._recorded(data)

    def _recorded(self, data: dict[str, Any]) -> dict[str, Any]:
        """What a subclass leaves out of the recorded spec while its own settings are unused."""
        return data

    @property
    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, max_tokens=self.max_tokens, top_p=self.top_p, stop=self.stop)


class ICDSettings(StudentSettings):
    """Settings of the `icd` kind: the student with top-k retrieved teacher steps in its prompt."""

    k: int = Field(4, ge=1)
    """Demonstrations retrieved per step."""
    goal_weight: float = Field(0.5, ge=0.0, le=1.0)
    """How much the task's goal, against the latest observation, counts when retrieving demonstrations."""
    demo_layout: DemoLayout = "system"
    """Where demonstrations go. system: the step's k demonstrations appended to the system prompt; they change at
    every step, so no prompt cache (llama.cpp's, an API provider's) holds anything after them. cached: `goal_k`
    demonstrations found by the goal alone, once per episode, in the system prompt; the history next; the step's
    other k - goal_k demonstrations (found by goal and latest observation) after the latest observation, so each
    step's prompt extends the previous one up to that observation."""
    goal_k: int = Field(2, ge=0)
    """The cached layout: demonstrations per episode found by the goal alone (at most k)."""

    @model_validator(mode="after")
    def _goal_k_fits(self) -> ICDSettings:
        if self.demo_layout == "cached" and self.goal_k > self.k:
            raise ValueError(f"goal_k ({self.goal_k}) cannot exceed k ({self.k})")
        return self

    def _recorded(self, data: dict[str, Any]) -> dict[str, Any]:
        # The system layout is recorded as before these settings existed, so its evaluations still resume.
        if self.demo_layout == "system":
            data.pop("demo_layout", None)
            data.pop("goal_k", None)
        return data


class CandidateOptions(_Settings):
    """How a student samples the candidate steps it votes on (self-consistent generation and the cascade)."""

    samples: int = sampling_field("samples", 3)
    temperature: float = sampling_field("temperature", 0.7)

    @property
    def sampling(self) -> Sampling:
        return Sampling(samples=self.samples, temperature=self.temperature)


class SelfConsistentOptions(CandidateOptions):
    """What self-consistent action generation does with its student (the `sc` kind less its student)."""


RepeatAction = Literal["stop", "teacher", "take"]
"""What a cascade does when its student repeats its reply to the same state (`CascadeOptions.on_repeat`)."""


class CascadeOptions(CandidateOptions):
    """What the cascade does with its student and teacher (the `cascade` kind less its parts)."""

    agreement: AgreementMode = "result"
    """result (the candidates' trial runs give the same result; chosen on a mathcode dev slice: 6/10 against 4/10
    for code) | code (identical normalised code) | majority (identical code for at least `min_agree`) |
    confidence (one sample at the student's own temperature, accepted when its action tokens' confidence reaches
    `threshold`; `samples`, `temperature` and `min_agree` are not used)."""
    min_agree: int | None = Field(None, ge=1)
    """Samples that must agree; unset: all of them (majority: more than half)."""
    online: bool = False
    """Add the teacher's deferred steps to the student's store as they happen."""
    on_repeat: RepeatAction = "stop"
    """What happens to a step whose chosen student action repeats the student's reply to the same state (however the
    candidates agree or however sure the student is): stop (the episode ends as `stuck`, as a student alone ends
    when its resamples repeat too), teacher (the step goes to the teacher) or take (the student acts). A fine-tuned
    student stuck on an error repeats the same code ever more confidently: on mathcode's test tasks (threshold 0.92)
    9 of 30 cascade episodes repeated an action, none of them then succeeded, and their 25 steps from the repeat on
    were a fifth of the student's; sent to the teacher, the same steps kept the success (14/30) at 1.34x the cost,
    the teacher repeating itself there too. Recorded only when not stop."""
    threshold: float = Field(0.99, ge=0.0, le=1.0)
    """Confidence mode: the confidence (geometric mean probability of the action's tokens) a step needs to be taken
    by the student; `agentkd calibrate` picks it on a dev slice (for a 0.95 target on factqa it chose 0.9924 for the
    frozen Qwen2.5-Coder-0.5B with 2 demonstrations on train[36:56], 0.85 for the main job's fine-tuned SmolLM2 on
    train[100:120]). Recorded only in confidence mode."""

    @model_serializer(mode="wrap")
    def _recorded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if self.agreement != "confidence":  # recorded as before the setting existed
            data.pop("threshold", None)
        if self.on_repeat == "stop":
            data.pop("on_repeat", None)
        return data

    @model_validator(mode="after")
    def _min_agree_fits(self) -> CascadeOptions:
        if self.min_agree is not None and self.min_agree > self.samples:
            raise ValueError(f"min_agree ({self.min_agree}) cannot exceed samples ({self.samples})")
        return self

    @property
    def needed(self) -> int:
        """The samples that must agree: `min_agree`, else all of them (more than half for majority)."""
        if self.min_agree is not None:
            return self.min_agree
        return self.samples // 2 + 1 if self.agreement == "majority" else self.samples


class SelfConsistentSettings(SelfConsistentOptions):
    """Settings of the `sc` kind."""

    student: PolicySpec = Field(description="a `student` or `icd` spec")


class CascadeSettings(CascadeOptions):
    """Settings of the `cascade` kind."""

    student: PolicySpec = Field(description="a `student` or `icd` spec")
    teacher: PolicySpec = Field(description="the policy a step is deferred to")


def options_of(options: type[BaseModel], settings: BaseModel) -> Any:
    """The `options` part of `settings` (e.g. the CascadeOptions of a CascadeSettings), validated as `options`."""
    return options.model_validate(settings.model_dump(include=set(options.model_fields)))

