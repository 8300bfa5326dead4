"""A policy that asks an LLM (any litellm model or a local `hf/` model) for each step."""

from __future__ import annotations

from agentkd.agent.prompts import DEFAULT_STOP
from agentkd.models.client import ModelClient
from agentkd.policies.base import PolicyContext, PolicyOutput
from agentkd.records import Role


class LLMPolicy:
    """Sends the conversation to a model; optionally forces the first thought's beginning."""

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
        self.stop = DEFAULT_STOP if stop is None else stop
        self.name = f"{role}:{self.client.model}"

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        messages = list(ctx.messages)
        prefix = ""
        if self.first_thought and ctx.step_index == 0:
            # Continue a partial assistant message: the provider completes the forced thought.
            prefix = f"Thought: {self.first_thought}"
            messages.append({"role": "assistant", "content": prefix})
        completion = await self.client.complete(messages, stop=self.stop)
        text = completion.text
        if prefix and not text.lstrip().lower().startswith("thought:"):
            text = prefix + text
        return PolicyOutput(
            text=text,
            role=self.role,
            model=completion.model,
            usage=completion.usage,
            latency_s=completion.latency_s,
        )
