"""One door to every LLM: litellm model strings plus local `hf/...` (transformers) and `gguf/...` (llama.cpp)
models; usage, cost, retries."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import litellm  # noqa: E402

from agentkd.errors import ModelError, TransientModelError  # noqa: E402
from agentkd.models import local_provider
from agentkd.models.distribution.catalog import CATALOG as GGUF_CATALOG  # noqa: E402
from agentkd.models.distribution.catalog import resolve_gguf  # noqa: E402
from agentkd.models.hf import provider as hf_provider
from agentkd.models.hf.local import ALIASES  # noqa: E402
from agentkd.models.llama import provider as gguf_provider  # noqa: E402
from agentkd.models.rate_limit import RateLimiter, estimate_tokens, rate_limiter_for  # noqa: E402
from agentkd.records import Usage  # noqa: E402
from agentkd.sampling import TEACHER_MAX_TOKENS  # noqa: E402

litellm.suppress_debug_info = True
hf_provider.register()
gguf_provider.register()

FATAL_ERRORS: tuple[type[BaseException], ...] = (
    litellm.AuthenticationError,
    litellm.PermissionDeniedError,
    litellm.NotFoundError,
)
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    litellm.AuthenticationError,
    litellm.PermissionDeniedError,
    litellm.NotFoundError,
    litellm.BadRequestError,
    litellm.UnsupportedParamsError,
)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    litellm.RateLimitError,
    litellm.APIConnectionError,
    litellm.Timeout,
    litellm.ServiceUnavailableError,
    litellm.InternalServerError,
    litellm.BadGatewayError,
    litellm.APIError,
)


LOCAL_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0", "::1"}
NO_KEY = "sk-no-key-required"
"""Sent to a local OpenAI-compatible server when no key is configured (llama.cpp and vLLM ignore it)."""
_CREDENTIALS = re.compile(r"missing credentials|api[_ ]?key|unauthori[sz]ed|invalid.{0,20}key|authenticat", re.I)


def is_local_base(api_base: str | None) -> bool:
    """Whether `api_base` points at this machine (a server started here needs no API key)."""
    return bool(api_base) and (urlparse(api_base).hostname or "") in LOCAL_HOSTS


def missing_keys(model: str) -> list[str]:
    """The provider's API key variables that are not set (none for local models)."""
    if is_local(model):
        return []
    try:
        return list(litellm.validate_environment(model).get("missing_keys") or [])
    except Exception:  # providers litellm cannot validate: let the call tell
        return []


def canonical_model(model: str) -> str:
    """Bare local aliases become provider strings: `smollm2-135m` → `hf/smollm2-135m` (transformers),
    `qwen2.5-coder-0.5b` → `gguf/qwen2.5-coder-0.5b` (llama.cpp); other strings pass through."""
    if model.lower() in ALIASES:
        return f"{hf_provider.PROVIDER}/{model}"
    if model.lower() in GGUF_CATALOG:
        return f"{gguf_provider.PROVIDER}/{model}"
    return model


def is_local(model: str) -> bool:
    return canonical_model(model).startswith((f"{hf_provider.PROVIDER}/", f"{gguf_provider.PROVIDER}/"))


def check_model_string(model: str) -> None:
    """Fail fast on a model string no provider can serve (raises a fatal ModelError)."""
    if canonical_model(model).startswith(f"{gguf_provider.PROVIDER}/"):
        resolve_gguf(canonical_model(model).split("/", 1)[1])  # installed and verified, or a .gguf file
        return
    if is_local(model):
        name = model.split("/", 1)[1]
        if name.lower() not in ALIASES and not (Path(name).expanduser() / "config.json").is_file():
            raise ModelError(
                f"unknown local model {name!r}: use an alias ({', '.join(sorted(ALIASES))}) or a folder "
                "with a Hugging Face model (config.json + weights)",
                fatal=True,
            )
        return
    try:
        litellm.get_llm_provider(model)
    except Exception as exc:
        raise ModelError(
            f"unknown model {model!r}: litellm cannot tell its provider. Use a provider prefix such as "
            "'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest', 'hosted_vllm/<name>' (with --api-base), "
            "a local alias such as 'smollm2-135m', or 'reference' for the environment's reference solver",
            fatal=True,
        ) from exc


@dataclass
class Completion:
    """The outcome of one model call (possibly n samples)."""

    texts: list[str]
    usage: Usage
    latency_s: float
    model: str
    finish_reasons: list[str] = field(default_factory=list)
    logprobs: list[list[tuple[str, float]] | None] | None = None
    """With `complete(logprobs=True)`: each text's generated tokens as (text, log-probability); None for a text
    whose provider returned none."""

    @property
    def text(self) -> str:
        return self.texts[0]


@dataclass
class ChatReply:
    """The outcome of one chat-completions request forwarded as given (`ModelClient.chat`)."""

    response: dict[str, Any]
    """The reply as an OpenAI `chat.completion` object (id, choices with messages and tool calls, usage)."""
    usage: Usage
    latency_s: float
    model: str


class ModelClient:
    """Calls one model through litellm with defaults, retries and per-call accounting."""

    def __init__(
        self,
        model: str,
        temperature: float = 0.0,
        max_tokens: int = TEACHER_MAX_TOKENS,
        stop: list[str] | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        timeout_s: float = 120.0,
        input_cost_per_token: float | None = None,
        output_cost_per_token: float | None = None,
        extra: dict[str, Any] | None = None,
        rate_limiter: RateLimiter | None = None,
        top_p: float | None = None,
    ) -> None:
        self.model = canonical_model(model)
        check_model_string(self.model)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.stop = stop
        self.api_base = api_base
        self.top_p = top_p
        """Nucleus sampling; None: the provider's default (all tokens)."""
        if api_key is None and is_local_base(api_base) and missing_keys(self.model):
            api_key = NO_KEY  # a local --api-base works without a key
        self.api_key = api_key
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.input_cost_per_token = input_cost_per_token
        self.output_cost_per_token = output_cost_per_token
        self.extra = dict(extra or {})
        self.rate_limiter = rate_limiter
        """The budget every request draws from; None: the one installed for this model in the process
        (`agentkd.models.rate_limit.rate_limited`), if any."""

    @property
    def holds_end(self) -> bool:
        """Whether this model honours `end_only_after` (in-process llama.cpp models do)."""
        return local_provider.holds_end(self.model)

    async def complete(
        self,
        messages: list[dict[str, Any]],
        n: int = 1,
        temperature: float | None = None,
        stop: list[str] | None = None,
        max_tokens: int | None = None,
        end_only_after: str | None = None,
        logprobs: bool = False,
    ) -> Completion:
        """n completions of `messages`. Retries transient errors; raises ModelError on permanent ones.

        `end_only_after`: the model may not end its turn before writing this text (an in-process llama.cpp model
        masks its end-of-turn tokens until then; other providers ignore it: see `holds_end`).
        `logprobs`: ask for the generated tokens' log-probabilities (`Completion.logprobs`): in-process llama.cpp
        models and OpenAI-compatible servers give them; a fatal ModelError for an in-process model that cannot."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature if temperature is None else temperature,
            "max_tokens": max_tokens or self.max_tokens,
            "timeout": self.timeout_s,
            **self.extra,
        }
        if n > 1:
            kwargs["n"] = n
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        if end_only_after and self.holds_end:
            kwargs["extra_body"] = {**kwargs.get("extra_body", {}), "end_only_after": end_only_after}
        if logprobs:
            self._ask_logprobs(kwargs)
        stops = stop if stop is not None else self.stop
        if stops:
            kwargs["stop"] = stops
        self._address(kwargs)
        started = time.perf_counter()
        response = await self._call_with_retries(kwargs)
        choices = list(response.choices)
        if n > 1 and len(choices) < n:  # provider ignored n: top up with single calls
            extra = await asyncio.gather(*[self._call_with_retries({**kwargs, "n": 1}) for _ in range(n - len(choices))])
            choices += [r.choices[0] for r in extra]
            usage = sum((self._usage(r) for r in extra), self._usage(response))
        else:
            usage = self._usage(response)
        return Completion(
            texts=[(choice.message.content or "") for choice in choices],
            usage=usage,
            latency_s=time.perf_counter() - started,
            model=self.model,
            finish_reasons=[str(c.finish_reason) for c in response.choices],
            logprobs=[token_logprobs(c) for c in choices] if logprobs else None,
        )

    async def chat(self, request: dict[str, Any]) -> ChatReply:
        """Forward one OpenAI chat-completions request (`messages`, `tools`, `tool_choice`, `temperature`,
        `max_tokens`, ...: the caller picks the fields) to this model, as given: none of this client's sampling
        defaults are added. The request's `model` is replaced by this client's. Retries transient errors; raises
        ModelError on permanent ones."""
        kwargs: dict[str, Any] = {**request, "model": self.model, "timeout": self.timeout_s, **self.extra}
        self._address(kwargs)
        started = time.perf_counter()
        response = await self._call_with_retries(kwargs)
        return ChatReply(response=_openai_response(response), usage=self._usage(response),
                         latency_s=time.perf_counter() - started, model=self.model)

    def _address(self, kwargs: dict[str, Any]) -> None:
        """Where the call goes and with which key, when set."""
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key

    def _ask_logprobs(self, kwargs: dict[str, Any]) -> None:
        if not local_provider.in_process(self.model):
            kwargs["logprobs"] = True
        elif local_provider.gives_logprobs(self.model):
            kwargs["extra_body"] = {**kwargs.get("extra_body", {}), "logprobs": True}
        else:
            raise ModelError(f"model {self.model!r} gives no token log-probabilities, which confidence deferral "
                             "reads: use a GGUF model (gguf/..., or `agentkd export` a trained student) or an "
                             "OpenAI-compatible server", fatal=True)

    async def _call_with_retries(self, kwargs: dict[str, Any]) -> Any:
        attempt = 0
        limiter = self.rate_limiter or rate_limiter_for(self.model)
        estimate = estimate_tokens(kwargs["messages"]) if limiter is not None else 0
        while True:
            try:
                if limiter is None:
                    return await litellm.acompletion(**kwargs)
                await limiter.acquire(estimate)  # a failed request keeps its estimate charged
                response = await litellm.acompletion(**kwargs)
                u = getattr(response, "usage", None)
                await limiter.settle(estimate, int(getattr(u, "prompt_tokens", 0) or 0)
                                     + int(getattr(u, "completion_tokens", 0) or 0))
                return response
            except PERMANENT_ERRORS as exc:
                fatal = isinstance(exc, FATAL_ERRORS)
                raise ModelError(f"model {self.model!r} failed permanently: {_short(exc)}", fatal=fatal) from exc
            except TRANSIENT_ERRORS as exc:
                if _CREDENTIALS.search(str(exc)):  # litellm reports some missing keys as server errors
                    raise self._credentials_error(exc) from exc
                if limiter is not None and isinstance(exc, litellm.RateLimitError):
                    await limiter.rate_limited()  # a 429: every caller of this budget waits for fresh budget
                attempt += 1
                if attempt > self.max_retries:
                    raise TransientModelError(
                        f"model {self.model!r} still failing after {self.max_retries} retries: {_short(exc)}"
                    ) from exc
                await asyncio.sleep(self.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random()))
            except ModelError:
                raise
            except Exception as exc:  # unknown provider errors are not retried blindly
                raise ModelError(f"model {self.model!r} call failed: {type(exc).__name__}: {_short(exc)}") from exc

    def _credentials_error(self, exc: BaseException) -> ModelError:
        keys = missing_keys(self.model)
        fix = (f"set {' or '.join(keys)} in the environment" if keys else "check the API key of this provider")
        return ModelError(f"model {self.model!r} has no valid API key ({_short(exc, 160)}); {fix}. A local server "
                          "given with --api-base http://127.0.0.1:PORT/v1 needs none.", fatal=True)

    def _usage(self, response: Any) -> Usage:
        u = getattr(response, "usage", None)
        prompt = int(getattr(u, "prompt_tokens", 0) or 0)
        completion = int(getattr(u, "completion_tokens", 0) or 0)
        cached = min(_cached_tokens(u), prompt)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=self._cost(response, prompt, completion),
                     calls=1, cached_prompt_tokens=cached, cache_write_tokens=min(_cache_write_tokens(u), prompt - cached))

    def _cost(self, response: Any, prompt: int, completion: int) -> float:
        if self.input_cost_per_token is not None or self.output_cost_per_token is not None:
            return prompt * (self.input_cost_per_token or 0.0) + completion * (self.output_cost_per_token or 0.0)
        if is_local(self.model):
            return 0.0
        hidden = getattr(response, "_hidden_params", None) or {}
        if hidden.get("response_cost") is not None:  # litellm already priced this call
            return float(hidden["response_cost"])
        try:
            return float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # models missing from the price map cost "unknown" -> 0
            return 0.0


def openai_choices(choices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-completion choices (as dicts) with OpenAI's standard fields only: role, content, tool calls, refusal,
    finish reason and logprobs."""
    shaped = []
    for choice in choices:
        message = choice.get("message") or {}
        out: dict[str, Any] = {"role": message.get("role") or "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            out["tool_calls"] = [{"id": c.get("id"), "type": c.get("type") or "function",
                                  "function": {"name": (c.get("function") or {}).get("name"),
                                               "arguments": (c.get("function") or {}).get("arguments") or "{}"}}
                                 for c in message["tool_calls"]]
        if message.get("refusal") is not None:
            out["refusal"] = message["refusal"]
        shaped.append({"index": choice.get("index", len(shaped)), "message": out,
                       "finish_reason": choice.get("finish_reason"), "logprobs": choice.get("logprobs")})
    return shaped


def _openai_response(response: Any) -> dict[str, Any]:
    """litellm's response as a plain OpenAI `chat.completion` object: the standard fields only (litellm adds its own
    bookkeeping to messages and usage)."""
    data = response.model_dump() if hasattr(response, "model_dump") else dict(response)
    choices = openai_choices(data.get("choices") or [])
    usage = data.get("usage") or {}
    shaped_usage: dict[str, Any] = {key: int(usage.get(key) or 0)
                                    for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
    cached = _detail(response.usage, "cached_tokens") if getattr(response, "usage", None) is not None else None
    if cached:
        shaped_usage["prompt_tokens_details"] = {"cached_tokens": int(cached)}
    return {"id": data.get("id"), "object": "chat.completion", "created": data.get("created"),
            "model": data.get("model"), "choices": choices, "usage": shaped_usage,
            "system_fingerprint": data.get("system_fingerprint")}

def token_logprobs(choice: Any) -> list[tuple[str, float]] | None:
    """A choice's generated tokens as (text, log-probability), from OpenAI's chat format (`logprobs.content`) or the
    completions format (`logprobs.tokens` + `token_logprobs`); None when the provider returned none."""
    found = choice.get("logprobs") if isinstance(choice, dict) else getattr(choice, "logprobs", None)
    if found is None:
        return None

    def read(item: Any, name: str) -> Any:
        return item.get(name) if isinstance(item, dict) else getattr(item, name, None)

    content = read(found, "content")
    if content is not None:
        return [(str(read(t, "token") or ""), float(read(t, "logprob"))) for t in content
                if read(t, "logprob") is not None]
    tokens, scores = read(found, "tokens"), read(found, "token_logprobs")
    if tokens is None or scores is None:
        return None
    return [(str(t), float(lp)) for t, lp in zip(tokens, scores) if lp is not None]


def _detail(usage: Any, name: str) -> Any:
    details = getattr(usage, "prompt_tokens_details", None)
    return details.get(name) if isinstance(details, dict) else getattr(details, name, None)


def _cached_tokens(usage: Any) -> int:
    """`usage.prompt_tokens_details.cached_tokens` (OpenAI's field, which litellm maps other providers' to: Anthropic's
    `cache_read_input_tokens`, Gemini's, DeepSeek's), an object or a dict; 0 when the server does not say (llama.cpp's
    OpenAI-compatible server, llama-cpp-python 0.3.36, reports no cached tokens)."""
    return int(_detail(usage, "cached_tokens") or 0)


def _cache_write_tokens(usage: Any) -> int:
    """Prompt tokens written to the provider's cache: litellm's `prompt_tokens_details.cache_creation_tokens`, or
    Anthropic's `cache_creation_input_tokens` on the usage itself; 0 when the provider does not say."""
    value = _detail(usage, "cache_creation_tokens")
    if not isinstance(value, int):
        value = getattr(usage, "cache_creation_input_tokens", None)
    return int(value) if isinstance(value, int) else 0


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
