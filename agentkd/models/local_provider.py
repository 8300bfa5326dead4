"""The part the in-process litellm providers (`hf/`, `gguf/`) share: litellm's call in, a generation out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import Choices, Message, ModelResponse, Usage

from agentkd.sampling import TEACHER_MAX_TOKENS


class InProcessProvider(CustomLLM):
    """A litellm custom provider that generates in this process. Subclasses set `provider` and implement
    `generate(model, messages, n, temperature, max_tokens, stop, top_p, seed)`, returning an object with
    `texts`, `finish_reasons`, `prompt_tokens`, `completion_tokens` (and optionally `cached_tokens`)."""

    provider = ""
    holds_end = False
    """Whether `generate` takes `end_only_after` (see `ModelClient.complete`)."""

    def generate(self, model: str, messages: list, **params: Any) -> Any:
        raise NotImplementedError

    def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        params = dict(kwargs.get("optional_params") or {})
        seed = params.get("seed")
        gen = self.generate(
            model,
            messages,
            n=int(params.get("n") or 1),
            temperature=float(params.get("temperature") or 0.0),
            max_tokens=int(params.get("max_tokens") or params.get("max_completion_tokens") or TEACHER_MAX_TOKENS),
            stop=_as_list(params.get("stop")),
            top_p=float(params.get("top_p") or 1.0),
            seed=int(seed) if seed is not None else None,
            **self._hold(params),
        )
        cached = getattr(gen, "cached_tokens", None)
        return ModelResponse(
            model=f"{self.provider}/{model}",
            created=int(time.time()),
            choices=[
                Choices(index=i, message=Message(role="assistant", content=text), finish_reason=reason)
                for i, (text, reason) in enumerate(zip(gen.texts, gen.finish_reasons))
            ],
            usage=Usage(
                prompt_tokens=gen.prompt_tokens,
                completion_tokens=gen.completion_tokens,
                total_tokens=gen.prompt_tokens + gen.completion_tokens,
                **({"prompt_tokens_details": {"cached_tokens": cached}} if cached is not None else {}),
            ),
        )

    def _hold(self, params: dict[str, Any]) -> dict[str, Any]:
        held = (params.get("extra_body") or {}).get("end_only_after")
        return {"end_only_after": held} if held and self.holds_end else {}

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.completion(model, messages, **kwargs))


def _as_list(stop: Any) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def register(handler: InProcessProvider) -> None:
    """Make `<handler.provider>/...` model strings resolve to `handler` (idempotent)."""
    if any(entry.get("provider") == handler.provider for entry in litellm.custom_provider_map):
        return
    litellm.custom_provider_map = [*litellm.custom_provider_map, {"provider": handler.provider, "custom_handler": handler}]


def holds_end(model: str) -> bool:
    """Whether `model` (a litellm model string) is served by an in-process provider that takes `end_only_after`."""
    prefix = model.split("/", 1)[0]
    handler = next((e["custom_handler"] for e in litellm.custom_provider_map if e.get("provider") == prefix), None)
    return bool(getattr(handler, "holds_end", False))
