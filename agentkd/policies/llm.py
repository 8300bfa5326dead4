"""A policy that asks an LLM (any litellm model or a local `hf/` model) for each step."""

from __future__ import annotations

from agentkd.codeact.parsing import CLOSING_FENCE, finish_reply
from agentkd.codeact.prompts import DEFAULT_STOP
from agentkd.models.client import Completion, ModelClient
from agentkd.policies.base import PolicyContext, PolicyOutput
from agentkd.policies.registry import BuildContext, register_policy
from agentkd.policies.repeats import guard_repeats
from agentkd.policies.settings import LLMSettings
from agentkd.records import Role
from agentkd.specs import PolicySpec

__all__ = ["LLMPolicy", "LLMSettings", "build_llm"]


class LLMPolicy:
    """Sends the conversation to a model; optionally forces the first thought's beginning.

    The reply stops at the end of its first code block; a reply that repeats the previous one for the same
    state is resampled at a temperature, and the episode ends as `stuck` if it keeps repeating."""

    def __init__(
        self,
        client: ModelClient | str,
        role: Role = "teacher",
        first_thought: str | None = None,
        stop: list[str] | None = None,
    ) -> None:
        self.client = ModelClient(client) if isinstance(client, str) else client
        self.role = role
        self.first_thought = first_thought
        self.stop = [*DEFAULT_STOP, CLOSING_FENCE] if stop is None else stop
        self.name = f"{role}:{self.client.model}"
        self.spec = PolicySpec(kind="llm", settings=LLMSettings(
            model=self.client.model, role=role, temperature=self.client.temperature,  # type: ignore[arg-type]
            max_tokens=self.client.max_tokens, top_p=getattr(self.client, "top_p", None), stop=stop,
            api_base=self.client.api_base, first_thought=first_thought,
        ).model_dump(mode="json"))

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        messages = list(ctx.messages)
        prefix = ""
        if self.first_thought and ctx.step_index == 0:
            # Continue a partial assistant message: the provider completes the forced thought.
            prefix = f"Thought: {self.first_thought}"
            messages.append({"role": "assistant", "content": prefix})

        async def complete(temperature: float | None = None) -> Completion:
            completion = await self.client.complete(messages, stop=self.stop, temperature=temperature)
            text = completion.text
            if prefix and not text.lstrip().lower().startswith("thought:"):
                text = prefix + text
            completion.texts = [finish_reply(text)]
            return completion

        completion, resampled = await guard_repeats(await complete(), ctx.steps, complete, role=self.role)
        return PolicyOutput(
            text=completion.text,
            role=self.role,
            model=completion.model,
            usage=completion.usage,
            latency_s=completion.latency_s,
            resampled=resampled,
        )


@register_policy("llm", LLMSettings)
def build_llm(settings: LLMSettings, context: BuildContext) -> LLMPolicy:
    """An LLM acting with the full CodeAct prompt (any litellm model string or local alias)."""
    client = ModelClient(context.model(settings.model), api_base=settings.api_base,
                         **settings.sampling.client_settings())
    return LLMPolicy(client, role=settings.role, first_thought=settings.first_thought, stop=settings.stop)
