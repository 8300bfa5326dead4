"""In-context-distilled student: teacher steps retrieved from the store become demonstrations."""

from __future__ import annotations

from typing import Any

from agentkd.codeact.parsing import CLOSING_FENCE, finish_reply
from agentkd.codeact.prompts import DEFAULT_STOP, recent_history, with_student_prompt
from agentkd.models.client import Completion, ModelClient
from agentkd.policies.base import PolicyContext, PolicyOutput
from agentkd.policies.confidence import ScoredSample, Segment, action_confidence
from agentkd.policies.registry import BuildContext, register_policy
from agentkd.policies.repeats import guard_repeats
from agentkd.policies.settings import OBSERVATION_PREFILL, DemoLayout, ICDSettings, StudentSettings
from agentkd.records import Role
from agentkd.run.layout import is_trained_student
from agentkd.sampling import STUDENT_MAX_TOKENS
from agentkd.specs import PolicySpec

__all__ = ["OBSERVATION_PREFILL", "ICDSettings", "StudentPolicy", "StudentSettings", "build_icd", "build_student",
           "render_demonstrations"]

DEMO_HEADER = "Here are steps an expert took in similar situations. Follow the same approach:"
STEP_DEMO_HEADER = ("Steps an expert took in similar states of OTHER tasks (follow the approach; their names and "
                    "values are not yours):")
STEP_DEMO_FOOTER = "Your task: {goal}\nAct on the observation above the examples."
CODE_FENCE = "```"
CODE_OPENING = "\n```python\n"
"""What a reply that ended without a code block is continued from (`code_followup`)."""


def render_demonstrations(hits: list[tuple[Any, float]], header: str = DEMO_HEADER) -> str:
    """The demonstration block added to the student's prompt."""
    parts = [header]
    for n, (record, _score) in enumerate(hits, 1):
        parts.append(f"--- Example {n} (task: {record.goal})\n{record.demo}")
    return "\n\n".join(parts)


_DEMOS = ICDSettings.model_fields


class StudentPolicy:
    """A small model acting on its own, or with retrieved teacher demonstrations (ICD) when given a store.

    `prefill` starts every reply (as a partial assistant message the model continues); use
    None for providers that cannot continue a partial message.
    """

    def __init__(
        self,
        client: ModelClient | str,
        store: Any = None,
        k: int = _DEMOS["k"].default,
        goal_weight: float = _DEMOS["goal_weight"].default,
        role: Role = "student",
        stop: list[str] | None = None,
        prefill: str | None = "Thought:",
        student_prompt: bool = False,
        history_steps: int | None = None,
        observation_prefill: str | None = None,
        code_followup: bool = False,
        code_before_end: bool = False,
        demo_layout: DemoLayout = _DEMOS["demo_layout"].default,
        goal_k: int = _DEMOS["goal_k"].default,
    ) -> None:
        self.client = ModelClient(client, max_tokens=STUDENT_MAX_TOKENS) if isinstance(client, str) else client
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
        self.demo_layout = demo_layout
        self.goal_k = min(goal_k, k)
        self._goal_demos: dict[str, list[tuple[Any, float]]] = {}
        kind = "icd" if store is not None else "sft" if student_prompt else "student"
        self.name = f"{kind}:{self.client.model}"
        settings = StudentSettings(model=self.client.model, max_tokens=self.client.max_tokens,
                                   temperature=self.client.temperature, top_p=getattr(self.client, "top_p", None),
                                   stop=stop, api_base=self.client.api_base,
                                   prompt="short" if student_prompt else "full", history_steps=history_steps,
                                   observation_prefill=observation_prefill, code_followup=code_followup,
                                   code_before_end=code_before_end)
        if store is not None:
            settings = ICDSettings(**settings.model_dump(), k=k, goal_weight=goal_weight, demo_layout=demo_layout,
                                   goal_k=goal_k)
        self.spec = PolicySpec(kind="icd" if store is not None else "student", settings=settings.model_dump(mode="json"))

    def messages(self, ctx: PolicyContext) -> list[dict[str, Any]]:
        """The conversation with the demonstrations for the current state, placed as `demo_layout` says."""
        messages = with_student_prompt(ctx.env, ctx.messages) if self.student_prompt else list(ctx.messages)
        if self.history_steps is not None:
            messages = recent_history(messages, self.history_steps)
        if self.store is None or len(self.store) == 0:
            return messages
        context = ctx.steps[-1].observation if ctx.steps else ""
        if self.demo_layout == "cached":
            return self._cached_layout(messages, ctx.task.prompt, context)
        hits = self.store.search(ctx.task.prompt, context, k=self.k, goal_weight=self.goal_weight)
        if not hits:
            return messages
        system = dict(messages[0])
        system["content"] = f"{system['content']}\n\n{render_demonstrations(hits)}"
        return [system, *messages[1:]]

    def _cached_layout(self, messages: list[dict[str, Any]], goal: str, context: str) -> list[dict[str, Any]]:
        """Goal demonstrations (the same all episode) in the system prompt; the step's own after the latest
        message, so the prompt up to that message is the previous step's prompt, as a prompt cache needs."""
        if goal not in self._goal_demos:
            self._goal_demos[goal] = self.store.search(goal, "", k=self.goal_k, goal_weight=1.0) if self.goal_k else []
        goal_hits = self._goal_demos[goal]
        shown = {record.id for record, _score in goal_hits}
        step_k = self.k - self.goal_k
        step_hits = [] if step_k == 0 else [
            hit for hit in self.store.search(goal, context, k=step_k + len(shown), goal_weight=self.goal_weight)
            if hit[0].id not in shown][:step_k]
        out = [dict(m) for m in messages]
        if goal_hits:
            out[0]["content"] = f"{out[0]['content']}\n\n{render_demonstrations(goal_hits)}"
        if step_hits:
            block = render_demonstrations(step_hits, STEP_DEMO_HEADER)
            out[-1]["content"] = f"{out[-1]['content']}\n\n{block}\n\n{STEP_DEMO_FOOTER.format(goal=goal)}"
        return out

    async def sample(self, ctx: PolicyContext, n: int, temperature: float) -> Completion:
        """n candidate outputs for the next step (each starting with the prefill, when set)."""
        completion, _segments = await self._sample(ctx, n, temperature, logprobs=False)
        return completion

    async def sample_scored(self, ctx: PolicyContext, temperature: float) -> ScoredSample:
        """One output for the next step and the confidence of its action (`agentkd.policies.confidence`): the
        model's probability of the code it wrote, including a code follow-up's."""
        completion, segments = await self._sample(ctx, 1, temperature, logprobs=True)
        return ScoredSample(completion, action_confidence(segments[0]))

    async def _sample(self, ctx: PolicyContext, n: int, temperature: float,
                      logprobs: bool) -> tuple[Completion, list[list[Segment]]]:
        messages = self.messages(ctx)
        prefill = (self.observation_prefill or self.prefill) if ctx.steps and self.prefill else self.prefill
        if prefill:  # small models keep the CodeAct format far better when the reply is started for them
            messages.append({"role": "assistant", "content": prefill})
        hold = {"end_only_after": CODE_FENCE} if self.code_before_end else {}  # clients written before it still fit
        scoring = {"logprobs": True} if logprobs else {}  # clients written before it still fit
        completion = await self.client.complete(messages, n=n, temperature=temperature, stop=self.stop, **hold,
                                                **scoring)
        texts = [_with_prefix(t, prefill) for t in completion.texts]
        scored = completion.logprobs or [None] * len(texts)
        segments = [[Segment(tokens)] if tokens is not None else [] for tokens in scored]
        if self.code_followup:
            for i, text in enumerate(texts):
                if CODE_FENCE not in text:
                    texts[i], more = await self._follow_up(messages[:-1] if prefill else messages, text, temperature,
                                                           completion, scoring)
                    segments[i] += more
        completion.texts = [finish_reply(t) for t in texts]
        return completion, segments

    async def _follow_up(self, messages: list[dict[str, Any]], text: str, temperature: float,
                         completion: Completion, scoring: dict[str, Any]) -> tuple[str, list[Segment]]:
        """`text` (a thought with no code) continued once from an opened python fence, and the continuation's
        scored tokens; the call's usage is added to `completion`'s, so tokens and calls stay counted."""
        start = text.rstrip() + CODE_OPENING
        more = await self.client.complete([*messages, {"role": "assistant", "content": start}], n=1,
                                          temperature=temperature, stop=self.stop, **scoring)
        completion.usage = completion.usage + more.usage
        completion.latency_s += more.latency_s
        rest = more.text
        answered_afresh = rest.lstrip().lower().startswith("thought:")  # a server that cannot continue
        tokens = (more.logprobs or [None])[0]
        segments = [Segment(tokens, in_code=not answered_afresh)] if tokens is not None else []
        return (rest if answered_afresh else start + rest), segments

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        first = await self.sample(ctx, 1, self.client.temperature)
        completion, resampled = await guard_repeats(first, ctx.steps, lambda t: self.sample(ctx, 1, t),
                                                  role=self.role)
        return PolicyOutput(text=completion.text, role=self.role, model=completion.model,
                            usage=completion.usage, latency_s=completion.latency_s, resampled=resampled)


def _with_prefix(text: str, prefill: str | None) -> str:
    """A sample as a whole reply: a server that closes the assistant turn answers from the start, so the prefill
    it was given is put back in front (unless it wrote its own `Thought:`)."""
    if not prefill or text.lstrip().lower().startswith(("thought:", prefill.lower())):
        return text
    return prefill + (text if text.startswith((" ", "\n")) else " " + text)


def _student(settings: StudentSettings, context: BuildContext, store: Any = None) -> StudentPolicy:
    model = context.model(settings.model, settings.api_base)
    trained = is_trained_student(settings.model) or is_trained_student(model)
    short = settings.prompt == "short" or (settings.prompt == "auto" and trained)
    client = ModelClient(model, api_base=settings.api_base, **settings.sampling.client_settings())
    demos = ({"k": settings.k, "goal_weight": settings.goal_weight, "demo_layout": settings.demo_layout,
              "goal_k": settings.goal_k} if isinstance(settings, ICDSettings) else {})
    return StudentPolicy(client, store, **demos, stop=settings.stop, student_prompt=short,
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
    return _student(settings, context, context.demo_store())
