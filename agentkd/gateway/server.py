"""The gateway's HTTP server: OpenAI's `/v1/chat/completions` and `/v1/models`, plus `/v1/feedback`.

Each chat request is checked (`protocol`), forwarded to the teacher through `ModelClient.chat`, recorded as a step of
its episode (`episodes`), and answered with the teacher's reply and the episode's id in the `X-Agentkd-Episode`
header. `stream: true` is answered as server-sent events carrying the whole reply in one chunk, once the teacher's
reply is complete and recorded. Errors are OpenAI-style bodies; secrets are redacted from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentkd.errors import GatewayError
from agentkd.evaluate.prices import resolve_prices
from agentkd.gateway.answer import CascadeAnswerer, TeacherAnswerer
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
from agentkd.gateway.student import ToolStudent
from agentkd.gateway.upstream import HttpUpstream, LocalToolUpstream
from agentkd.models.client import ModelClient
from agentkd.records import Trajectory, Usage
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout
from agentkd.store.records import tool_records

log = logging.getLogger("agentkd.gateway")
ANSWERED_HEADER = "X-Agentkd-Answered-By"
"""Response header of the cascade gateway: `student` or `teacher`."""


def record_folder(settings: GatewaySettings) -> RunFolder:
    """Where the episodes go: the run itself, or for a cascade the evaluation RUN/eval/<name>.jsonl (with its
    settings in RUN/eval/settings/<name>.json)."""
    if settings.cascade is None:
        return RunFolder(settings.run)
    layout = RunLayout(settings.run)
    name = settings.cascade.name
    return RunFolder(settings.run, trajectories=layout.eval_trajectories(name), config=layout.eval_settings(name))


def open_store(run: Path, online: bool) -> Any:
    """RUN's demonstration store; when RUN has none, an empty one with `online` (the teacher's answers fill it),
    else None (the student answers without demonstrations)."""
    from agentkd.store.demo_store import DemoStore

    index = RunLayout(run).index_dir
    if (index / "meta.json").is_file():
        return DemoStore.load(index)
    return DemoStore() if online else None


class Gateway:
    """The gateway as an object: `open()` takes the run folder (and re-reads its episodes), `app()` is the ASGI
    application, `close()` releases the folder. `serve()` does all three around uvicorn."""

    def __init__(self, settings: GatewaySettings, client: ModelClient | None = None,
                 student: ToolStudent | None = None) -> None:
        self.settings = settings
        self.client = client or ModelClient(settings.teacher, api_base=settings.api_base, timeout_s=settings.timeout_s)
        self.folder = record_folder(settings)
        key = settings.api_key.get_secret_value() if settings.api_key else None
        self._key = key
        self.redact = Redactor([key, self.client.api_key])
        prices = resolve_prices({"teacher": self.client.model},
                                {"teacher": settings.teacher_price} if settings.teacher_price else None,
                                roles=("teacher",))
        self.price = prices.price("teacher")
        self.upstream: HttpUpstream | LocalToolUpstream | None = None
        if self.client.model.startswith("gguf/"):
            self.upstream = LocalToolUpstream(self.client.model)
        elif settings.direct_upstream:
            self.upstream = HttpUpstream.for_client(self.client)
        if self.upstream is not None:
            self.redact = Redactor([key, self.client.api_key, self.upstream.api_key])
        self.teacher = TeacherAnswerer(self.upstream or self.client)
        self.answerer: TeacherAnswerer | CascadeAnswerer = self.teacher
        self.student = student
        cascade = settings.cascade
        policy = None
        if cascade is not None:
            self.student = student or ToolStudent(cascade.student, k=cascade.k, goal_weight=cascade.goal_weight,
                                                  max_tokens=cascade.max_tokens)
            self.answerer = CascadeAnswerer(self.student, self.teacher, cascade.threshold)
            policy = f"gateway-cascade:{self.student.model}+teacher:{self.client.model}"
        self.book = EpisodeBook(self.folder, self.client.model, self.price, settings.success_threshold, policy=policy)
        self._learned = 0

    def open(self) -> int:
        """Take the run folder's writer lock, record this session in run.json and re-read the episodes recorded
        before (returns how many). RunFolderError when the folder holds another job or another writer has it.
        A cascade also loads RUN's demonstration store (an empty one with `online` when RUN has none) and the
        student."""
        self.folder.start(self.settings.identity(), self.settings.details())
        loaded = self.book.load()
        if isinstance(self.upstream, LocalToolUpstream):
            self.upstream.speaker.load()
        if self.settings.cascade is not None and self.student is not None:
            if self.student.store is None:
                self.student.store = open_store(self.settings.run, self.settings.cascade.online)
            self.student.load()
        return loaded

    def close(self) -> None:
        """Save the store when the teacher's answers joined it (`online`), then release the run folder. Idempotent."""
        try:
            if self._learned and self.student is not None:
                with self.student.lock:
                    self.student.store.save(RunLayout(self.settings.run).index_dir)
                self._learned = 0
        finally:
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
        answer = await self.answerer.answer(parsed)
        trajectory = self.book.record(parsed.messages, answer.message, Usage(), answer.latency_s,
                                      tools=parsed.tools, episode_id=parsed.episode_id, model=answer.model,
                                      role=answer.role, vote=answer.vote, candidates=answer.candidates,
                                      role_usage=answer.role_usage)
        if answer.role == "teacher" and self.settings.cascade is not None and self.settings.cascade.online:
            await self._learn(trajectory)
        headers = {EPISODE_HEADER: trajectory.task.id}
        if answer.vote is not None:
            headers[ANSWERED_HEADER] = answer.role
        if parsed.stream:
            return StreamingResponse(_sse(answer.response, parsed.extra_usage), media_type="text/event-stream",
                                     headers=headers)
        return JSONResponse(answer.response, headers=headers)

    async def _learn(self, trajectory: Trajectory) -> None:
        """Add the teacher's last step of an episode to the student's store (`--online`)."""
        records = tool_records(trajectory, steps=[len(trajectory.steps) - 1])
        if self.student is not None and records:
            self._learned += await asyncio.to_thread(self.student.learn, records)

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


def _uvicorn_server() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, calling `on_stop` once requests have finished and before the signal that stopped it is
        raised again (uvicorn ends the process with it, so code after `run()` would not run)."""

        def __init__(self, config: Any, on_stop: Any) -> None:
            super().__init__(config)
            self.on_stop = on_stop

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    self.on_stop()

    return Server


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
        server = _uvicorn_server()(config, on_stop=gateway.close)
        server.run()
        if not server.started:
            raise GatewayError(f"the gateway could not listen on {settings.host}:{settings.port} (in use?)")
    finally:
        gateway.close()
