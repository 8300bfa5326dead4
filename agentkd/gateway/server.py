"""The gateway's HTTP server: OpenAI's `/v1/chat/completions` and `/v1/models`, plus `/v1/feedback`.

Each chat request is checked (`protocol`), forwarded to the teacher through `ModelClient.chat`, recorded as a step of
its episode (`episodes`), and answered with the teacher's reply and the episode's id in the `X-Agentkd-Episode`
header. `stream: true` is answered as server-sent events carrying the whole reply in one chunk, once the teacher's
reply is complete and recorded. Errors are OpenAI-style bodies; secrets are redacted from them.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentkd.errors import GatewayError, ModelError
from agentkd.evaluate.prices import resolve_prices
from agentkd.gateway.episodes import EpisodeBook, UnknownEpisodeError
from agentkd.gateway.protocol import (
    EPISODE_HEADER,
    ChatRequest,
    RequestRefused,
    chat_request,
    error_body,
    feedback_request,
    parse_body,
)
from agentkd.gateway.redact import Redactor
from agentkd.gateway.settings import GatewaySettings
from agentkd.models.client import ModelClient
from agentkd.run.folder import RunFolder

log = logging.getLogger("agentkd.gateway")


class Gateway:
    """The gateway as an object: `open()` takes the run folder (and re-reads its episodes), `app()` is the ASGI
    application, `close()` releases the folder. `serve()` does all three around uvicorn."""

    def __init__(self, settings: GatewaySettings, client: ModelClient | None = None) -> None:
        self.settings = settings
        self.client = client or ModelClient(settings.teacher, api_base=settings.api_base, timeout_s=settings.timeout_s)
        self.folder = RunFolder(settings.run)
        key = settings.api_key.get_secret_value() if settings.api_key else None
        self._key = key
        self.redact = Redactor([key, self.client.api_key])
        prices = resolve_prices({"teacher": self.client.model},
                                {"teacher": settings.teacher_price} if settings.teacher_price else None,
                                roles=("teacher",))
        self.price = prices.price("teacher")
        self.book = EpisodeBook(self.folder, self.client.model, self.price, settings.success_threshold)

    def open(self) -> int:
        """Take the run folder's writer lock, record this session in run.json and re-read the episodes recorded
        before (returns how many). RunFolderError when the folder holds another job or another writer has it."""
        self.folder.start(self.settings.identity(), self.settings.details())
        return self.book.load()

    def close(self) -> None:
        self.folder.close()

    def app(self) -> Starlette:
        """The ASGI application."""
        routes = [
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/models", self._models, methods=["GET"]),
            Route("/v1/feedback", self._feedback, methods=["POST"]),
            Route("/agentkd/feedback", self._feedback, methods=["POST"]),
            Route("/health", self._health, methods=["GET"]),
        ]
        return Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed})

    # routes -------------------------------------------------------------------------
    async def _chat(self, request: Request) -> Response:
        try:
            self._authorise(request)
            parsed = chat_request(parse_body(await self._body(request)), request.headers.get(EPISODE_HEADER))
            return await self._answer(parsed)
        except RequestRefused as exc:
            return self._refusal(exc)
        except Exception as exc:  # a bug or a full disk: an OpenAI-style 500, secrets redacted, nothing torn
            return self._refusal(RequestRefused(500, f"the gateway failed: {type(exc).__name__}: {exc}",
                                                type="server_error", code="gateway_error"))

    async def _answer(self, parsed: ChatRequest) -> Response:
        try:
            reply = await self.client.chat(parsed.forwarded)
        except ModelError as exc:
            status = 400 if _is_bad_request(exc) else 502
            raise RequestRefused(status, f"the teacher {self.client.model!r} failed: {exc}",
                                 type="invalid_request_error" if status == 400 else "upstream_error",
                                 code="teacher_error") from None
        choices = reply.response.get("choices") or []
        if not choices:
            raise RequestRefused(502, f"the teacher {self.client.model!r} returned no choice", type="upstream_error",
                                 code="teacher_error")
        trajectory = self.book.record(parsed.messages, choices[0]["message"], reply.usage, reply.latency_s,
                                      tools=parsed.tools, episode_id=parsed.episode_id, model=reply.model)
        headers = {EPISODE_HEADER: trajectory.task.id}
        body = {**reply.response, "id": reply.response.get("id") or f"chatcmpl-{uuid.uuid4().hex}",
                "created": reply.response.get("created") or int(time.time())}
        if parsed.stream:
            return StreamingResponse(_sse(body, parsed.extra_usage), media_type="text/event-stream", headers=headers)
        return JSONResponse(body, headers=headers)

    async def _models(self, request: Request) -> Response:
        try:
            self._authorise(request)
        except RequestRefused as exc:
            return self._refusal(exc)
        return JSONResponse({"object": "list", "data": [
            {"id": self.client.model, "object": "model", "created": 0, "owned_by": "agentkd-gateway"}]})

    async def _feedback(self, request: Request) -> Response:
        try:
            self._authorise(request)
            feedback = feedback_request(parse_body(await self._body(request)))
            try:
                trajectory = self.book.grade(feedback.episode_id, feedback.score, feedback.success)
            except UnknownEpisodeError as exc:
                raise RequestRefused(404, str(exc), param="episode_id", code="episode_not_found") from None
        except RequestRefused as exc:
            return self._refusal(exc)
        return JSONResponse({"episode_id": trajectory.task.id, "score": trajectory.score,
                             "success": trajectory.success, "steps": len(trajectory.steps)})

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "episodes": len(self.book.episodes)})

    # checks -------------------------------------------------------------------------
    def _authorise(self, request: Request) -> None:
        if self._key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._key.encode()):
            raise RequestRefused(401, "Incorrect or missing API key: send the gateway's key (agentkd gateway "
                                      "--api-key) as 'Authorization: Bearer KEY'", code="invalid_api_key")

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RequestRefused(413, f"the request body ({declared} bytes) is larger than the gateway's limit of "
                                      f"{limit} bytes", code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestRefused(413, f"the request body is larger than the gateway's limit of {limit} bytes",
                                     code="request_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    def _refusal(self, exc: RequestRefused) -> Response:
        body = exc.body()
        body["error"]["message"] = self.redact(body["error"]["message"])
        if exc.status >= 500:
            log.warning("answered %s: %s", exc.status, body["error"]["message"])
        return JSONResponse(body, status_code=exc.status)


def _is_bad_request(exc: ModelError) -> bool:
    """Whether the teacher refused the request itself (so the client's request is at fault: 400)."""
    import litellm

    return isinstance(exc.__cause__, (litellm.BadRequestError, litellm.UnsupportedParamsError))


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(error_body(f"no route {request.url.path}: the gateway serves /v1/chat/completions, "
                                   "/v1/models and /v1/feedback", code="not_found"), status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(error_body(f"{request.method} is not allowed on {request.url.path}",
                                   code="method_not_allowed"), status_code=405)


async def _sse(body: dict[str, Any], include_usage: bool) -> AsyncIterator[str]:
    """A complete chat.completion as OpenAI's stream of `chat.completion.chunk` events: the whole message in one
    delta, then the finish reason, then (when asked) the usage, then `[DONE]`."""
    head = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"],
            "system_fingerprint": body.get("system_fingerprint")}
    for choice in body["choices"]:
        message = choice["message"]
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        yield _event({**head, "choices": [{"index": choice["index"], "delta": delta, "finish_reason": None}]})
        yield _event({**head, "choices": [{"index": choice["index"], "delta": {},
                                           "finish_reason": choice.get("finish_reason")}]})
    if include_usage:
        yield _event({**head, "choices": [], "usage": body.get("usage")})
    yield "data: [DONE]\n\n"


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def serve(settings: GatewaySettings, on_ready: Any = None) -> None:
    """Run the gateway until SIGTERM or Ctrl-C: requests in flight get `settings.grace_s` to finish, then the run
    folder is released. `on_ready(gateway, episodes_loaded)` is called once the folder is open, before binding."""
    import uvicorn

    gateway = Gateway(settings)
    loaded = gateway.open()
    try:
        if on_ready is not None:
            on_ready(gateway, loaded)
        config = uvicorn.Config(gateway.app(), host=settings.host, port=settings.port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=settings.grace_s, lifespan="off")
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            raise GatewayError(f"the gateway could not listen on {settings.host}:{settings.port} (in use?)")
    finally:
        gateway.close()
