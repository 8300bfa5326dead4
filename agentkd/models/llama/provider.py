"""Registers the in-process llama.cpp provider with litellm as `gguf/<alias or path.gguf>`.

llama_cpp is imported on the first call, not when this module is imported.
"""

from __future__ import annotations

from typing import Any

from agentkd.models import local_provider

PROVIDER = "gguf"


class LlamaCppProvider(local_provider.InProcessProvider):
    """litellm custom provider running GGUF models with llama.cpp in this process."""

    provider = PROVIDER
    holds_end = True
    gives_logprobs = True

    def generate(self, model: str, messages: list, **params: Any) -> Any:
        from agentkd.models.llama.door import generate

        return generate(model, messages, **params)


def register() -> None:
    """Make `gguf/...` model strings resolve to the llama.cpp provider (idempotent)."""
    local_provider.register(LlamaCppProvider())
