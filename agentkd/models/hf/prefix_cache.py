"""Prefix KV-cache reuse for the in-process Hugging Face door (`hf/`).

One `PrefixCache` per loaded model holds the token ids the model last encoded and their key/value states (a
transformers `DynamicCache`). A call takes the stored cache cropped to the longest common token prefix with its
prompt (the prompt's last token is always left to encode: `generate` needs an input), so `generate` encodes only
the rest. The n samples of one step share one encoding of the prompt. After the call the cache holds the prompt
and the first sample's reply, so the next step of the same episode, whose prompt extends this one, starts there.
Callers hold the model's lock from `take` to `keep`; interleaved episodes of one process then simply share their
common prefix (the system prompt, or nothing). `AGENTKD_HF_PREFIX_CACHE=0` turns reuse off.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from agentkd.errors import ModelError
from agentkd.models.prefix import common_prefix

ENV_VAR = "AGENTKD_HF_PREFIX_CACHE"
_ON = {"", "1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}


class PrefixCacheSettingError(ModelError):
    """AGENTKD_HF_PREFIX_CACHE holds something other than 1/0 (true/false, yes/no, on/off)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=True)


def reuse_enabled() -> bool:
    """Whether `hf/` reuses the KV cache of a shared prompt prefix (AGENTKD_HF_PREFIX_CACHE, default on)."""
    raw = os.environ.get(ENV_VAR, "").strip().lower()
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise PrefixCacheSettingError(f"{ENV_VAR}={raw!r}: give 1 (reuse the prompt prefix's KV cache, the default) or 0 "
                                  "(re-encode every prompt in full)")


def cacheable(model: Any) -> bool:
    """Whether the model's cache is a plain `DynamicCache` of full-attention layers, which can be cropped to any
    prefix (sliding-window, linear-attention and static caches cannot, so those models re-encode every prompt)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    supports = getattr(model, "_supports_default_dynamic_cache", None)
    if supports is None or not supports() or model.config.is_encoder_decoder:
        return False
    if getattr(model.generation_config, "cache_implementation", None) is not None:
        return False
    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # noqa: BLE001 - an unusual config: no reuse rather than a failed call
        return False
    return all(type(layer) is DynamicLayer for layer in cache.layers)


class PrefixCache:
    """The tokens one model last encoded and their KV cache. Not thread-safe: use under the model's lock."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.cache: Any = None
        self._supported: bool | None = None

    def supported(self, model: Any) -> bool:
        """Whether reuse works for this model (checked once)."""
        if self._supported is None:
            self._supported = cacheable(model)
        return self._supported

    def take(self, model: Any, prompt: list[int]) -> tuple[Any, int]:
        """(a cache holding the first `cached` tokens of `prompt`, `cached`), `cached` < len(prompt). The stored
        cache is handed over (nothing is stored until `keep`), so a failed call cannot leave a half-written one."""
        from transformers import DynamicCache

        cache, tokens = self.cache, self.tokens
        self.drop()
        cached = min(common_prefix(tokens, prompt), len(prompt) - 1)
        if cache is None or cached <= 0 or cache.get_seq_length() != len(tokens):
            return DynamicCache(config=model.config), 0
        cache.crop(cached - len(tokens))  # a negative count: the tokens to remove from the end
        return cache, cached

    def keep(self, cache: Any, sequence: list[int]) -> None:
        """Store `cache` (batch of one) as holding the first tokens of `sequence` (the prompt and its reply)."""
        length = cache.get_seq_length()
        if length > len(sequence) or length <= 0:
            return
        self.cache, self.tokens = cache, list(sequence[:length])

    def drop(self) -> None:
        """Forget the stored cache."""
        self.cache, self.tokens = None, []


def extend(model: Any, cache: Any, input_ids: Any, end: int) -> None:
    """Encode `input_ids[0, cached:end]` into `cache` (batch of one), so that it holds the first `end` tokens."""
    import torch

    start = cache.get_seq_length()
    if end <= start:
        return
    device = input_ids.device
    kwargs: dict[str, Any] = {}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = 1  # the logits are not needed; all of them would be tokens x vocabulary floats
    model(
        input_ids=input_ids[:, start:end],
        attention_mask=torch.ones(1, end, dtype=torch.long, device=device),
        position_ids=torch.arange(start, end, device=device).unsqueeze(0),
        past_key_values=cache,
        use_cache=True,
        **kwargs,
    )
