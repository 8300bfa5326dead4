"""Who answers a gateway request: the teacher alone (`TeacherAnswerer`), or the cascade (`CascadeAnswerer`): the
student answers, and its reply is sent when its confidence reaches the threshold, else the teacher answers.

Either way the outcome is an `Answer`: the OpenAI `chat.completion` body for the client, and what the step records
(who answered, the usage of each role, the vote and the student's candidate for a cascade step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentkd.codeact.parsing import squash
from agentkd.errors import ModelError
from agentkd.gateway.episodes import observation_text
from agentkd.gateway.protocol import ChatRequest, RequestRefused
from agentkd.gateway.student import StudentAnswer, ToolStudent, conversation_state, new_completion_id
from agentkd.gateway.upstream import UpstreamError
from agentkd.models.client import ChatReply
from agentkd.models.tool_text import ToolReply
from agentkd.records import Role, Usage, Vote
from agentkd.tool_calls import message_text, same_tool_calls, tool_calls_of


@dataclass
class Answer:
    """A request's reply and how it came about."""

    response: dict[str, Any]
    """The OpenAI `chat.completion` body sent to the client."""
    role: Role
    model: str
    role_usage: dict[str, Usage]
    latency_s: float
    vote: Vote | None = None
    candidates: list[str] | None = None
    warning: str | None = None

    @property
    def message(self) -> dict[str, Any]:
        return self.response["choices"][0]["message"]


class Answerer(Protocol):
    async def answer(self, request: ChatRequest) -> Answer: ...


class Upstream(Protocol):
    model: str

    async def chat(self, request: dict[str, Any]) -> ChatReply: ...


class TeacherAnswerer:
    """Every request forwarded to the teacher as given: over plain HTTP to an OpenAI-compatible server
    (`HttpUpstream`), else through litellm (`ModelClient`)."""

    def __init__(self, client: Upstream) -> None:
        self.client = client

    async def answer(self, request: ChatRequest) -> Answer:
        try:
            reply = await self.client.chat(request.forwarded)
        except ModelError as exc:
            status = 400 if _is_bad_request(exc) else 502
            raise RequestRefused(status, f"the teacher {self.client.model!r} failed: {exc}",
                                 type="invalid_request_error" if status == 400 else "upstream_error",
                                 code="teacher_error") from None
        if not reply.response.get("choices"):
            raise RequestRefused(502, f"the teacher {self.client.model!r} returned no choice", type="upstream_error",
                                 code="teacher_error")
        body = {**reply.response, "id": reply.response.get("id") or new_completion_id(),
                "created": reply.response.get("created") or int(time.time())}
        return Answer(response=body, role="teacher", model=reply.model, role_usage={"teacher": reply.usage},
                      latency_s=reply.latency_s)


@dataclass
class CascadeAnswerer:
    """The student answers; its reply is accepted when usable and its confidence reaches `threshold`, else the request
    goes to the teacher. A reply is unusable when it was cut at max_tokens, has a malformed call, calls a tool the
    request did not offer, makes the same call twice,
    or does not do what `tool_choice` asks (a call when it is `required` or names a function; none when `none`), or
    repeats an earlier reply of the conversation to the same state (the same calls, or the same text, after the same
    tool results: a student looping on an error; the gateway cannot end the client's episode, so the teacher answers,
    as a cascade with `on_repeat="teacher"` does)."""

    student: ToolStudent
    teacher: TeacherAnswerer
    threshold: float
    counts: dict[str, int] = field(default_factory=lambda: {"student": 0, "teacher": 0})

    async def answer(self, request: ChatRequest) -> Answer:
        started = time.perf_counter()
        tools = request.tools
        try:
            said = await self.student.answer(request.messages, tools, _max_tokens(request))
        except ModelError as exc:
            said, problem = None, f"the student failed: {exc}"
        else:
            problem = unusable(said, request)
        usable = said is not None and problem is None and said.confidence is not None
        accepted = usable and said.confidence >= self.threshold  # type: ignore[union-attr]
        vote = Vote(mode="confidence", accepted=accepted, winner_index=0 if usable else None,
                    winner_count=1 if usable else 0, needed=1, group_sizes=[1] if usable else [],
                    unusable=0 if usable else 1, confidence=said.confidence if said else None,
                    threshold=self.threshold, warning=problem)
        candidates = [said.reply.text] if said is not None else None
        spent = {"student": said.usage} if said is not None else {}
        if accepted:
            assert said is not None
            self.counts["student"] += 1
            return Answer(response=said.response_body(), role="student", model=said.model, role_usage=spent,
                          latency_s=time.perf_counter() - started, vote=vote, candidates=candidates)
        answer = await self.teacher.answer(request)
        self.counts["teacher"] += 1
        answer.role_usage = {**spent, **answer.role_usage}
        answer.latency_s = time.perf_counter() - started
        answer.vote, answer.candidates = vote, candidates
        return answer


def unusable(said: StudentAnswer, request: ChatRequest) -> str | None:
    """Why the student's reply cannot be sent for this request (None: it can)."""
    reply = said.reply
    if said.finish_reason == "length":
        return "the reply was cut at max_tokens"
    if reply.malformed:
        return "a tool call is not a JSON object with a name"
    offered = {str((t.get("function") or {}).get("name")) for t in request.tools or []}
    strange = [call.name for call in reply.calls if call.name not in offered]
    if strange:
        return f"calls a tool the request did not offer: {strange[0]}"
    keys = [(call.name, call.arguments) for call in reply.calls]
    if len(set(keys)) < len(keys):
        return "the same call twice in one reply"
    choice = request.forwarded.get("tool_choice")
    if choice == "none" and reply.calls:
        return "calls a tool although tool_choice is none"
    if (choice == "required" or isinstance(choice, dict)) and not reply.calls:
        return "calls no tool although tool_choice requires one"
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        if wanted and any(call.name != wanted for call in reply.calls):
            return f"tool_choice names {wanted}"
    if not reply.calls and not reply.content:
        return "an empty reply"
    if repeats_earlier_reply(reply, request.messages):
        return "repeats an earlier reply to the same state"
    return None


def repeats_earlier_reply(reply: ToolReply, messages: list[dict[str, Any]]) -> bool:
    """Whether an assistant turn of `messages` answered the state the reply answers now (the messages since the last
    assistant turn) with the same calls (names and canonical arguments), or, making none, with the same text."""
    _, now = conversation_state(messages)
    turns = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    for before, turn in zip(turns, turns[1:]):  # the state a turn answered: what followed the turn before it
        if observation_text(messages[before + 1:turn]) != now:
            continue
        earlier = messages[turn]
        if reply.calls and same_tool_calls(reply.calls, tool_calls_of(earlier) or []):
            return True
        if not reply.calls and not earlier.get("tool_calls") and (
                squash(message_text(earlier.get("content"))) == squash(reply.content)):
            return True
    return False


def _max_tokens(request: ChatRequest) -> int | None:
    value = request.forwarded.get("max_completion_tokens") or request.forwarded.get("max_tokens")
    return int(value) if isinstance(value, int) and value > 0 else None


def _is_bad_request(exc: ModelError) -> bool:
    """Whether the teacher refused the request itself (so the client's request is at fault: 400)."""
    if isinstance(exc, UpstreamError):
        return exc.status in (400, 422)
    import litellm

    return isinstance(exc.__cause__, (litellm.BadRequestError, litellm.UnsupportedParamsError))
