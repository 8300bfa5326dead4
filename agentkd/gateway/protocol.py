"""The OpenAI chat-completions protocol as the gateway speaks it: which request fields it forwards, which it
refuses, and OpenAI-style error bodies.

Unknown top-level fields are refused (400, `param` naming the field), as OpenAI's own API refuses them: a field
the gateway does not know could change what the teacher does without being recorded. The fields listed in
`FORWARDED` go to the teacher as given; `model`, `metadata`, `stream`, `stream_options`, `store` and `user` are
read by the gateway and not forwarded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentkd.errors import GatewayError

FORWARDED = frozenset({
    "messages", "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs",
    "top_logprobs", "response_format", "reasoning_effort", "n", "functions", "function_call",
})
"""Request fields sent on to the teacher as given."""
CONSUMED = frozenset({"model", "metadata", "stream", "stream_options", "store", "user"})
"""Request fields the gateway reads itself (or accepts and drops: `store`, `user`)."""
EPISODE_HEADER = "X-Agentkd-Episode"
"""Request header naming the episode explicitly; the response carries the episode's id in it."""
EPISODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class RequestRefused(GatewayError):
    """A request the gateway answers with an OpenAI-style error body instead of forwarding it."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type, param, code

    def body(self) -> dict[str, Any]:
        """`{"error": {"message", "type", "param", "code"}}`, as OpenAI's API answers errors."""
        return error_body(str(self), type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass
class ChatRequest:
    """A checked chat-completions request: what goes to the teacher, and what the gateway reads itself."""

    forwarded: dict[str, Any]
    """The fields sent on to the teacher (see FORWARDED)."""
    episode_id: str | None = None
    """The episode named by the `X-Agentkd-Episode` header or `metadata.episode_id`, if any."""
    stream: bool = False
    extra_usage: bool = False
    """`stream_options.include_usage`: a streamed reply ends with a chunk holding the usage."""
    requested_model: str | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.forwarded["messages"]

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return self.forwarded.get("tools")


def parse_body(raw: bytes) -> Any:
    """The request body as JSON; 400 when it is not."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestRefused(400, f"the request body is not valid JSON ({exc}); send a JSON object",
                             code="invalid_json") from None


def chat_request(body: Any, header_episode: str | None = None) -> ChatRequest:
    """Check a chat-completions body; RequestRefused (400) for a wrong shape, an unknown field, `n` above 1."""
    if not isinstance(body, dict):
        raise RequestRefused(400, "the request body must be a JSON object", code="invalid_body")
    unknown = sorted(set(body) - FORWARDED - CONSUMED)
    if unknown:
        raise RequestRefused(400, f"Unrecognized request argument supplied: {unknown[0]} (the gateway forwards "
                                  f"only the chat-completions fields it knows)", param=unknown[0],
                             code="unknown_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRefused(400, "'messages' must be a non-empty list of messages", param="messages",
                             code="invalid_messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RequestRefused(400, f"messages[{i}] must be an object with a role among {', '.join(sorted(ROLES))}",
                                 param=f"messages[{i}]", code="invalid_messages")
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise RequestRefused(400, "'tools' must be a list of tool definitions", param="tools", code="invalid_tools")
    n = body.get("n")
    if n is not None and n != 1:
        raise RequestRefused(400, "the gateway records one reply per request: 'n' must be 1", param="n",
                             code="unsupported_parameter")
    stream = body.get("stream")
    if stream not in (None, True, False):
        raise RequestRefused(400, "'stream' must be true or false", param="stream", code="invalid_stream")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise RequestRefused(400, "'metadata' must be an object", param="metadata", code="invalid_metadata")
    episode = header_episode or (metadata or {}).get("episode_id")
    if episode is not None and not (isinstance(episode, str) and EPISODE_ID.match(episode)):
        raise RequestRefused(400, "an episode id is 1 to 128 letters, digits and _.:- (starting with a letter or "
                                  "digit)", param="metadata.episode_id", code="invalid_episode_id")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestRefused(400, "'stream_options' must be an object", param="stream_options",
                             code="invalid_stream_options")
    forwarded = {k: v for k, v in body.items() if k in FORWARDED and v is not None}
    return ChatRequest(forwarded=forwarded, episode_id=episode, stream=bool(stream),
                       extra_usage=bool((options or {}).get("include_usage")),
                       requested_model=body.get("model") if isinstance(body.get("model"), str) else None)


@dataclass
class Feedback:
    """An episode's outcome, sent after the episode: a score in [0, 1] and optionally an explicit success."""

    episode_id: str
    score: float
    success: bool | None = None


def feedback_request(body: Any) -> Feedback:
    """Check a feedback body `{"episode_id": ..., "score": 0..1, "success": optional bool}`; 400 when wrong."""
    if not isinstance(body, dict):
        raise RequestRefused(400, "the request body must be a JSON object", code="invalid_body")
    unknown = sorted(set(body) - {"episode_id", "score", "success"})
    if unknown:
        raise RequestRefused(400, f"Unrecognized feedback field: {unknown[0]} (send episode_id, score and "
                                  "optionally success)", param=unknown[0], code="unknown_parameter")
    episode = body.get("episode_id")
    if not isinstance(episode, str) or not EPISODE_ID.match(episode):
        raise RequestRefused(400, "'episode_id' must name an episode (the X-Agentkd-Episode header of its replies)",
                             param="episode_id", code="invalid_episode_id")
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 1.0:
        raise RequestRefused(400, "'score' must be a number in [0, 1]", param="score", code="invalid_score")
    success = body.get("success")
    if success is not None and not isinstance(success, bool):
        raise RequestRefused(400, "'success' must be true or false", param="success", code="invalid_success")
    return Feedback(episode_id=episode, score=float(score), success=success)
