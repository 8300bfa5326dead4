"""Forwarding to an OpenAI-compatible teacher server over plain HTTP, without litellm.

When the teacher is `openai/NAME` or `hosted_vllm/NAME` with an `api_base`, the request is already in the server's
own format: the gateway posts it to `{api_base}/chat/completions` with one pooled async HTTP client, which costs a
fraction of a litellm call per request. Usage (prompt, completion and cached prompt tokens) is read from the reply
as `ModelClient` reads it; the gateway prices it. Other teachers go through litellm (`ModelClient.chat`).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import httpx

from agentkd.errors import ModelError, TransientModelError
from agentkd.models.client import ChatReply, ModelClient, openai_choices
from agentkd.records import Usage

OPENAI_COMPATIBLE = {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY"}
"""Model prefixes whose servers speak OpenAI's chat-completions protocol, and the variable litellm reads their key
from."""
RETRIED = {408, 409, 429, 500, 502, 503, 504}


class UpstreamError(ModelError):
    """The teacher server refused a request; `status` is its HTTP status (0: it could not be reached)."""

    def __init__(self, message: str, status: int, fatal: bool = False) -> None:
        super().__init__(message, fatal=fatal)
        self.status = status


class HttpUpstream:
    """An OpenAI-compatible teacher server reached with httpx; `chat` is a drop-in for `ModelClient.chat`."""

    def __init__(self, model: str, name: str, api_base: str, api_key: str | None, timeout_s: float,
                 max_retries: int = 4, backoff_s: float = 1.0) -> None:
        self.model = model
        """The teacher as recorded (`openai/NAME`)."""
        self.name = name
        """The model name sent to the server (`NAME`)."""
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def for_client(cls, client: ModelClient) -> HttpUpstream | None:
        """The HTTP upstream of a client whose model is served by an OpenAI-compatible server at its api_base; None
        for any other (litellm then does the call)."""
        prefix, _, name = client.model.partition("/")
        if not client.api_base or prefix not in OPENAI_COMPATIBLE or not name or client.extra:
            return None
        key = client.api_key or os.environ.get(OPENAI_COMPATIBLE[prefix]) or None
        return cls(client.model, name, client.api_base, key, client.timeout_s, client.max_retries, client.backoff_s)

    async def chat(self, request: dict[str, Any]) -> ChatReply:
        """Post one chat-completions request (its `model` replaced by the server's name for the teacher). Retries
        429, 5xx and connection failures; raises UpstreamError on other refusals."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, limits=httpx.Limits(max_keepalive_connections=32))
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {**request, "model": self.name}
        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                answer = await self._client.post(self.url, json=body, headers=headers)
            except httpx.TimeoutException as exc:
                failure: UpstreamError = UpstreamError(f"model {self.model!r} timed out after {self.timeout_s:g} s "
                                                       f"({type(exc).__name__})", 0)
            except httpx.TransportError as exc:
                failure = UpstreamError(f"model {self.model!r} could not be reached at {self.url}: "
                                        f"{type(exc).__name__}: {exc}", 0)
            else:
                if answer.status_code == 200:
                    return self._reply(answer, time.perf_counter() - started)
                failure = UpstreamError(f"model {self.model!r} answered {answer.status_code}: "
                                        f"{_error_message(answer)}", answer.status_code,
                                        fatal=answer.status_code in (401, 403, 404))
                if answer.status_code not in RETRIED:
                    raise failure
            attempt += 1
            if attempt > self.max_retries:
                raise TransientModelError(f"{failure} (still failing after {self.max_retries} retries)") from failure
            await asyncio.sleep(self.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random()))

    def _reply(self, answer: httpx.Response, latency_s: float) -> ChatReply:
        try:
            data = answer.json()
        except ValueError:
            raise UpstreamError(f"model {self.model!r} answered with a body that is not JSON", 502) from None
        if not isinstance(data, dict):
            raise UpstreamError(f"model {self.model!r} answered with a body that is not a JSON object", 502)
        usage = data.get("usage") or {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        return ChatReply(response=_openai_body(data), latency_s=latency_s, model=self.model,
                         usage=Usage(prompt_tokens=prompt, completion_tokens=completion, calls=1,
                                     cached_prompt_tokens=min(cached, prompt)))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _openai_body(data: dict[str, Any]) -> dict[str, Any]:
    """The server's reply with OpenAI's `chat.completion` fields only (as `ModelClient.chat` shapes litellm's)."""
    choices = openai_choices(data.get("choices") or [])
    usage = data.get("usage") or {}
    shaped: dict[str, Any] = {key: int(usage.get(key) or 0)
                              for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached:
        shaped["prompt_tokens_details"] = {"cached_tokens": int(cached)}
    return {"id": data.get("id"), "object": "chat.completion", "created": data.get("created"),
            "model": data.get("model"), "choices": choices, "usage": shaped,
            "system_fingerprint": data.get("system_fingerprint")}


def _error_message(answer: httpx.Response) -> str:
    """The server's error message (OpenAI's `{"error": {"message"}}`), else the start of its body."""
    try:
        error = answer.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (ValueError, AttributeError):
        pass
    return answer.text[:300]


class LocalToolUpstream:
    """A GGUF teacher run in this process (`gguf/NAME`) that answers chat requests with tool calls, as the cascade's
    student does (`ToolStudent`, without demonstrations): its chat template is given the tools and its
    `<tool_call>` blocks are read back as `tool_calls`. Greedy; `max_tokens` is honoured."""

    def __init__(self, model: str, max_tokens: int = 1024) -> None:
        from agentkd.gateway.student import ToolStudent

        self.speaker = ToolStudent(model, store=None, k=0, max_tokens=max_tokens)
        self.model = self.speaker.model
        self.api_key: str | None = None

    async def chat(self, request: dict[str, Any]) -> ChatReply:
        wanted = request.get("max_completion_tokens") or request.get("max_tokens")
        said = await self.speaker.answer(request["messages"], request.get("tools"),
                                         int(wanted) if isinstance(wanted, int) and wanted > 0 else None)
        return ChatReply(response=said.response_body(), usage=said.usage, latency_s=said.latency_s, model=self.model)
