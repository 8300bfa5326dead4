"""In-context-distilled student: teacher steps retrieved from the store become demonstrations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from agentkd.codeact.parsing import CLOSING_FENCE, finish_reply
from agentkd.codeact.prompts import DEFAULT_STOP, recent_history, with_student_prompt
from agentkd.models.client import Completion, ModelClient
from agentkd.policies.base import PolicyContext, PolicyOutput
from agentkd.policies.registry import BuildContext, register_policy
from agentkd.policies.repeats import guard_repeats
from agentkd.records import Role
from agentkd.run.layout import is_trained_student
from agentkd.specs import PolicySpec

DEMO_HEADER = "Here are steps an expert took in similar situations. Follow the same approach:"
OBSERVATION_PREFILL = "Thought: The observation shows"
"""How an untrained student's reply after an observation starts: small models given only `Thought:` there tend to
copy their previous reply word for word (the same search again); starting the thought from the observation makes
them read it (on a factqa dev slice the 0.5B then answered the single-hop questions it had looped on)."""
CODE_FENCE = "```"
CODE_OPENING = "\n```python\n"
"""What a reply that ended without a code block is continued from (`code_followup`)."""


def render_demonstrations(hits: list[tuple[Any, float]]) -> str:
    """The demonstration block appended to the student's system prompt."""
    parts = [DEMO_HEADER]
    for n, (record, _score) in enumerate(hits, 1):
        parts.append(f"--- Example {n} (task: {record.goal})\n{record.demo}")
    return "\n\n".join(parts)


class StudentSettings(BaseModel):
    """Settings of the `student` kind: a small model acting alone."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m", description="model string, local alias, folder, or 'trained' (the run's)")
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    api_base: str | None = None
    prompt: Literal["auto", "full", "short"] = "auto"
    """auto: the short student prompt for a student `agentkd train` wrote, the full CodeAct prompt otherwise."""
    history_steps: int | None = Field(None, ge=0)
    """Show only the task and the last this many (reply, observation) pairs (long episodes); None: all."""
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
        data = handler(self)
        if self.prompt == "short" or (self.prompt == "auto" and is_trained_student(self.model)):
            data.pop("observation_prefill", None)
            data.pop("code_followup", None)
        if not self.code_before_end:  # off: recorded as before the setting existed
            data.pop("code_before_end", None)
        return data


class ICDSettings(StudentSettings):
    """Settings of the `icd` kind: the student with top-k retrieved teacher steps in its prompt."""

    k: int = Field(4, ge=1)
    goal_weight: float = Field(0.5, ge=0.0, le=1.0)


class StudentPolicy:
    """A small model acting on its own, or with retrieved teacher demonstrations (ICD) when given a store.

    `prefill` starts every reply (as a partial assistant message the model continues); use
    None for providers that cannot continue a partial message.
    """

    def __init__(
        self,
        client: ModelClient | str,
        store: Any = None,
        k: int = 4,
        goal_weight: float = 0.5,
        role: Role = "student",
        stop: list[str] | None = None,
        prefill: str | None = "Thought:",
        student_prompt: bool = False,
        history_steps: int | None = None,
        observation_prefill: str | None = None,
        code_followup: bool = False,
        code_before_end: bool = False,
    ) -> None:
        self.client = ModelClient(client, max_tokens=256) if isinstance(client, str) else client
        self.store = store
        self.k = k
        self.goal_weight = goal_weight
        self.role = role
        # Stopping at the closing fence saves the tokens small models spend chatting after the code.
        self.stop = [*DEFAULT_STOP, CLOSING_FENCE] if stop is None else stop
        self.prefill = prefill
        self.student_prompt = student_prompt
        self.history_steps = history_steps
        self.observation_prefill = observation_prefill
        self.code_followup = code_followup
        self.code_before_end = code_before_end
        kind = "icd" if store is not None else "sft" if student_prompt else "student"
        self.name = f"{kind}:{self.client.model}"
        settings = StudentSettings(model=self.client.model, max_tokens=self.client.max_tokens,
                                   temperature=self.client.temperature, api_base=self.client.api_base,
                                   prompt="short" if student_prompt else "full", history_steps=history_steps,
                                   observation_prefill=observation_prefill, code_followup=code_followup,
                                   code_before_end=code_before_end)
        if store is not None:
            settings = ICDSettings(**settings.model_dump(), k=k, goal_weight=goal_weight)
        self.spec = PolicySpec(kind="icd" if store is not None else "student", settings=settings.model_dump(mode="json"))

    def messages(self, ctx: PolicyContext) -> list[dict[str, Any]]:
        """The conversation with demonstrations for the current state added to the system prompt."""
        messages = with_student_prompt(ctx.env, ctx.messages) if self.student_prompt else list(ctx.messages)
        if self.history_steps is not None:
            messages = recent_history(messages, self.history_steps)
        if self.store is None or len(self.store) == 0:
            return messages
        context = ctx.steps[-1].observation if ctx.steps else ""
        hits = self.store.search(ctx.task.prompt, context, k=self.k, goal_weight=self.goal_weight)
        if not hits:
            return messages
        system = dict(messages[0])
        system["content"] = f"{system['content']}\n\n{render_demonstrations(hits)}"
        return [system, *messages[1:]]

    async def sample(self, ctx: PolicyContext, n: int, temperature: float) -> Completion:
        """n candidate outputs for the next step (each starting with the prefill, when set)."""
        messages = self.messages(ctx)
        prefill = (self.observation_prefill or self.prefill) if ctx.steps and self.prefill else self.prefill
        if prefill:  # small models keep the CodeAct format far better when the reply is started for them
            messages.append({"role": "assistant", "content": prefill})
        hold = {"end_only_after": CODE_FENCE} if self.code_before_end else {}  # clients written before it still fit
        completion = await self.client.complete(messages, n=n, temperature=temperature, stop=self.stop, **hold)
        texts = [_with_prefix(t, prefill) for t in completion.texts]
        if self.code_followup:
            texts = [await self._follow_up(messages[:-1] if prefill else messages, t, temperature, completion)
                     if CODE_FENCE not in t else t for t in texts]
        completion.texts = [finish_reply(t) for t in texts]
        return completion

    async def _follow_up(self, messages: list[dict[str, Any]], text: str, temperature: float,
                         completion: Completion) -> str:
        """`text` (a thought with no code) continued once from an opened python fence; the call's usage is added
        to `completion`'s, so tokens and calls stay counted."""
        start = text.rstrip() + CODE_OPENING
        more = await self.client.complete([*messages, {"role": "assistant", "content": start}], n=1,
                                          temperature=temperature, stop=self.stop)
        completion.usage = completion.usage + more.usage
        completion.latency_s += more.latency_s
        rest = more.text
        if rest.lstrip().lower().startswith("thought:"):  # a server that cannot continue answered afresh
            return rest
        return start + rest

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        first = await self.sample(ctx, 1, self.client.temperature)
        completion, resampled = await guard_repeats(first, ctx.steps, lambda t: self.sample(ctx, 1, t))
        return PolicyOutput(text=completion.text, role=self.role, model=completion.model,
                            usage=completion.usage, latency_s=completion.latency_s, resampled=resampled)


def _with_prefix(text: str, prefill: str | None) -> str:
    """A sample as a whole reply: a server that closes the assistant turn answers from the start, so the prefill
    it was given is put back in front (unless it wrote its own `Thought:`)."""
    if not prefill or text.lstrip().lower().startswith(("thought:", prefill.lower())):
        return text
    return prefill + (text if text.startswith((" ", "\n")) else " " + text)


def _student(settings: StudentSettings, context: BuildContext, store: Any = None, k: int = 4,
             goal_weight: float = 0.5) -> StudentPolicy:
    model = context.model(settings.model, settings.api_base)
    trained = is_trained_student(settings.model) or is_trained_student(model)
    short = settings.prompt == "short" or (settings.prompt == "auto" and trained)
    client = ModelClient(model, max_tokens=settings.max_tokens, temperature=settings.temperature,
                         api_base=settings.api_base)
    return StudentPolicy(client, store, k=k, goal_weight=goal_weight, student_prompt=short,
                         history_steps=settings.history_steps,
                         observation_prefill=None if short else settings.observation_prefill,
                         code_followup=settings.code_followup and not short,
                         code_before_end=settings.code_before_end and not short)


@register_policy("student", StudentSettings)
def build_student(settings: StudentSettings, context: BuildContext) -> StudentPolicy:
    """A small model acting alone (the short prompt when agentkd fine-tuned it)."""
    return _student(settings, context)


@register_policy("icd", ICDSettings)
def build_icd(settings: ICDSettings, context: BuildContext) -> StudentPolicy:
    """A frozen student with the run's most similar teacher steps as in-context demonstrations."""
    return _student(settings, context, context.demo_store(), settings.k, settings.goal_weight)
