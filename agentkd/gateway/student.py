"""The cascade gateway's student: a local GGUF model that answers a chat-completions request, tool calls included.

The model runs in this process through the llama.cpp door. Its chat template is given the request's tools (Qwen2.5's
template shows them and asks for `<tool_call>{json}</tool_call>` blocks), and its reply is read back as an OpenAI
assistant message (`agentkd.models.tool_text`). Teacher steps retrieved from a demonstration store, found by the
conversation's goal (its first user message) and state (what followed the last reply), are shown to it in the system
message. The reply's confidence is the geometric mean probability of its action tokens.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from agentkd.errors import ModelError
from agentkd.gateway.episodes import observation_text
from agentkd.models.tool_text import ToolReply, parse_tool_reply, reply_confidence
from agentkd.records import Usage
from agentkd.sampling import TEACHER_MAX_TOKENS
from agentkd.tool_calls import message_text

DEMO_HEADER = ("Replies an expert gave in similar situations of other conversations (follow the approach; their "
               "names and values are not yours):")


@dataclass
class StudentAnswer:
    """One reply of the student and how sure it was."""

    reply: ToolReply
    confidence: float | None
    """exp(mean log-probability) of the reply's action tokens; None: no usable action."""
    usage: Usage
    latency_s: float
    model: str
    demonstrations: int
    """How many retrieved steps the prompt showed."""
    finish_reason: str = "stop"
    """`length` when the reply was cut at max_tokens."""

    def response_body(self) -> dict[str, Any]:
        """The reply as an OpenAI `chat.completion` body."""
        usage = self.usage
        shaped: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                                  "total_tokens": usage.total_tokens}
        if usage.cached_prompt_tokens:
            shaped["prompt_tokens_details"] = {"cached_tokens": usage.cached_prompt_tokens}
        finish = "tool_calls" if self.reply.calls else ("length" if self.finish_reason == "length" else "stop")
        return {"id": new_completion_id(), "object": "chat.completion", "created": int(time.time()),
                "model": self.model, "system_fingerprint": None,
                "choices": [{"index": 0, "message": self.reply.message(), "logprobs": None, "finish_reason": finish}],
                "usage": shaped}


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def conversation_state(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """(goal, context) of a conversation, as the demonstration store indexes teacher steps: the first user message,
    and what followed the last assistant reply ("" before the first reply)."""
    goal = next((message_text(m.get("content")) for m in messages if m.get("role") == "user"), "")
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    return goal, "" if last is None else observation_text(messages[last + 1:])


def with_demonstrations(messages: list[dict[str, Any]], demos: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """`messages` with the demonstrations, (goal, demo) pairs, appended to the system message (one added first when
    there is none)."""
    if not demos:
        return messages
    block = "\n\n".join([DEMO_HEADER, *(f"--- Example {n} (task: {goal})\n{demo}"
                                         for n, (goal, demo) in enumerate(demos, 1))])
    if messages and messages[0].get("role") in ("system", "developer"):
        head = messages[0]
        text = message_text(head.get("content"))
        return [{**head, "role": "system", "content": f"{text}\n\n{block}" if text else block}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]


class ToolStudent:
    """A GGUF model (`gguf/NAME`, an alias or a .gguf path) answering chat requests with retrieved demonstrations.

    `store` is a `DemoStore` (None: no demonstrations). Calls are made in a worker thread; the store is read under
    the caller's lock (see `CascadeAnswerer`)."""

    def __init__(self, model: str, store: Any = None, k: int = 3, goal_weight: float = 0.5,
                 max_tokens: int = TEACHER_MAX_TOKENS, temperature: float = 0.0) -> None:
        from agentkd.models.client import canonical_model

        name = canonical_model(model)
        if not name.startswith("gguf/"):
            raise ModelError(f"the cascade gateway's student runs in this process through llama.cpp: give a GGUF "
                             f"model (gguf/qwen2.5-coder-0.5b, or a .gguf path), not {model!r}", fatal=True)
        self.model = name
        self.store = store
        self.k = k
        self.goal_weight = goal_weight
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.lock = threading.Lock()
        """Held while the store is read or extended (a DemoStore is not thread-safe)."""

    def load(self) -> None:
        """Load the model now (the first request would otherwise wait for it)."""
        from agentkd.models.llama.door import get_door

        get_door(self.model.split("/", 1)[1])

    def demonstrations(self, messages: list[dict[str, Any]],
                       tools: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
        """The retrieved teacher steps for this state, as (goal, demo): tool-call steps (and final replies) for a
        request with tools, CodeAct steps for one without."""
        if self.store is None or not len(self.store) or self.k < 1:
            return []
        goal, context = conversation_state(messages)
        with self.lock:
            hits = self.store.search(goal, context, k=self.k * 4, goal_weight=self.goal_weight)
        wanted = ("tool_calls", "text") if tools else (None,)
        demos = [(record.goal, record.demo) for record, _score in hits if record.metadata.get("action_kind") in wanted]
        return demos[: self.k]

    def answer_now(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                   max_tokens: int | None = None) -> StudentAnswer:
        """The student's reply to a request (blocking): retrieval, one greedy generation with log-probabilities,
        the reply read back, its confidence."""
        from agentkd.models.llama.door import generate

        demos = self.demonstrations(messages, tools)
        prompt = with_demonstrations(messages, demos)
        generation = generate(self.model.split("/", 1)[1], prompt, n=1, temperature=self.temperature,
                              max_tokens=min(max_tokens or self.max_tokens, self.max_tokens), logprobs=True,
                              tools=tools)
        reply = parse_tool_reply(generation.texts[0])
        tokens = generation.token_logprobs[0] if generation.token_logprobs else None
        usage = Usage(prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
                      calls=1, cached_prompt_tokens=generation.cached_tokens)
        return StudentAnswer(reply=reply, confidence=reply_confidence(reply, tokens), usage=usage,
                             latency_s=generation.latency_s, model=self.model, demonstrations=len(demos),
                             finish_reason=generation.finish_reasons[0])

    async def answer(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                     max_tokens: int | None = None) -> StudentAnswer:
        """`answer_now` in a worker thread."""
        return await asyncio.to_thread(self.answer_now, messages, tools, max_tokens)

    def learn(self, records: list[Any]) -> int:
        """Add teacher steps (`StepRecord`s) to the store (blocking). Returns how many were new."""
        if self.store is None or not records:
            return 0
        with self.lock:
            return self.store.add_records(records)
