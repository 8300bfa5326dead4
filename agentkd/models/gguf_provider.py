"""Registers the in-process llama.cpp provider with litellm as `gguf/<alias or path.gguf>`.

llama_cpp is imported on the first call, not when this module is imported.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import Choices, Message, ModelResponse, Usage

PROVIDER = "gguf"


class LlamaCppProvider(CustomLLM):
    """litellm custom provider running GGUF models with llama.cpp in this process."""

    def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        from agentkd.models.llama_door import generate

        params = dict(kwargs.get("optional_params") or {})
        seed = params.get("seed")
        gen = generate(
            model,
            messages,
            n=int(params.get("n") or 1),
            temperature=float(params.get("temperature") or 0.0),
            max_tokens=int(params.get("max_tokens") or params.get("max_completion_tokens") or 512),
            stop=_as_list(params.get("stop")),
            top_p=float(params.get("top_p") or 1.0),
            seed=int(seed) if seed is not None else None,
        )
        return ModelResponse(
            model=f"{PROVIDER}/{model}",
            created=int(time.time()),
            choices=[
                Choices(index=i, message=Message(role="assistant", content=text), finish_reason=reason)
                for i, (text, reason) in enumerate(zip(gen.texts, gen.finish_reasons))
            ],
            usage=Usage(
                prompt_tokens=gen.prompt_tokens,
                completion_tokens=gen.completion_tokens,
                total_tokens=gen.prompt_tokens + gen.completion_tokens,
                prompt_tokens_details={"cached_tokens": gen.cached_tokens},
            ),
        )

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.completion(model, messages, **kwargs))


def _as_list(stop: Any) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def register() -> None:
    """Make `gguf/...` model strings resolve to the llama.cpp provider (idempotent)."""
    if any(entry.get("provider") == PROVIDER for entry in litellm.custom_provider_map):
        return
    litellm.custom_provider_map = [
        *litellm.custom_provider_map,
        {"provider": PROVIDER, "custom_handler": LlamaCppProvider()},
    ]
