"""Registers the in-process Hugging Face provider with litellm as `hf/<alias-or-path>`."""

from __future__ import annotations

from typing import Any

from agentkd.models import local_provider
from agentkd.models.hf.local import generate

PROVIDER = "hf"


class LocalHFProvider(local_provider.InProcessProvider):
    """litellm custom provider running local transformers models in this process. Each call reuses the KV cache
    of the prompt prefix it shares with the model's previous call; usage reports it as
    `prompt_tokens_details.cached_tokens` (see `agentkd.models.hf.prefix_cache`)."""

    provider = PROVIDER

    def generate(self, model: str, messages: list, **params: Any) -> Any:
        return generate(model, messages, **params)


def register() -> None:
    """Make `hf/...` model strings resolve to the local provider (idempotent)."""
    local_provider.register(LocalHFProvider())
