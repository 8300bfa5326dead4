"""The part the in-process litellm providers (`hf/`, `gguf/`) share: litellm's call in, a generation out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import ChatCompletionTokenLogprob, ChoiceLogprobs, Choices, Message, ModelResponse, Usage

from agentkd.sampling import TEACHER_MAX_TOKENS


class InProcessProvider(CustomLLM):
    """A litellm custom provider that generates in this process. Subclasses set `provider` and implement
    `generate(model, messages, n, temperature, max_tokens, stop, top_p, seed)`, returning an object with
    `texts`, `finish_reasons`, `prompt_tokens`, `completion_tokens` (and optionally `cached_tokens` and
    `token_logprobs`)."""

    provider = ""
    holds_end = False
    """Whether `generate` takes `end_only_after` (see `ModelClient.complete`)."""
    gives_logprobs = False
    """Whether `generate` takes `logprobs` and returns `token_logprobs`."""

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
        scored = getattr(gen, "token_logprobs", None) or [None] * len(gen.texts)
        return ModelResponse(
            model=f"{self.provider}/{model}",
            created=int(time.time()),
            choices=[
                Choices(index=i, message=Message(role="assistant", content=text), finish_reason=reason,
                        **({"logprobs": _as_logprobs(tokens)} if tokens is not None else {}))
                for i, (text, reason, tokens) in enumerate(zip(gen.texts, gen.finish_reasons, scored))
            ],
            usage=Usage(
                prompt_tokens=gen.prompt_tokens,
                completion_tokens=gen.completion_tokens,
                total_tokens=gen.prompt_tokens + gen.completion_tokens,
                **({"prompt_tokens_details": {"cached_tokens": cached}} if cached is not None else {}),
            ),
        )

    def _hold(self, params: dict[str, Any]) -> dict[str, Any]:
        extra = params.get("extra_body") or {}
        held = extra.get("end_only_after")
        asked = {"end_only_after": held} if held and self.holds_end else {}
        if extra.get("logprobs") and self.gives_logprobs:
            asked["logprobs"] = True
        return asked

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.completion(model, messages, **kwargs))


def _as_logprobs(tokens: list[tuple[str, float]]) -> ChoiceLogprobs:
    """Generated tokens and their log-probabilities in OpenAI's chat format (`choice.logprobs.content`)."""
    return ChoiceLogprobs(content=[ChatCompletionTokenLogprob(token=text, logprob=lp, bytes=None, top_logprobs=[])
                                   for text, lp in tokens])


def _as_list(stop: Any) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def register(handler: InProcessProvider) -> None:
    """Make `<handler.provider>/...` model strings resolve to `handler` (idempotent)."""
    if any(entry.get("provider") == handler.provider for entry in litellm.custom_provider_map):
        return
    litellm.custom_provider_map = [*litellm.custom_provider_map, {"provider": handler.provider, "custom_handler": handler}]


def _handler(model: str) -> Any:
    prefix = model.split("/", 1)[0]
    return next((e["custom_handler"] for e in litellm.custom_provider_map if e.get("provider") == prefix), None)


def holds_end(model: str) -> bool:
    """Whether `model` (a litellm model string) is served by an in-process provider that takes `end_only_after`."""
    return bool(getattr(_handler(model), "holds_end", False))


def in_process(model: str) -> bool:
    """Whether `model` is served by an in-process provider (its settings travel in `extra_body`)."""
    return _handler(model) is not None


def gives_logprobs(model: str) -> bool:
    """Whether `model`'s in-process provider returns token log-probabilities."""
    return bool(getattr(_handler(model), "gives_logprobs", False))
