"""Tool calls written as text by a local model, read back as OpenAI `tool_calls`.

Qwen2.5's chat template (and other Hermes-style templates) shows the model its tools and asks for each call as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`. `parse_tool_reply` turns such a reply into an OpenAI
assistant message, and says where the calls' names and arguments sit in the text, so that the confidence of the
reply can be read from the log-probabilities of exactly those tokens (`reply_confidence`): the tokens of the
action, not of the JSON scaffolding or of any text around it. A reply without tool calls is all action.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from agentkd.codeact.parsing import squash
from agentkd.records import ToolCall
from agentkd.tool_calls import canonical_arguments, same_tool_calls

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|$)", re.S)
_NAME = re.compile(r'"name"\s*:\s*')
_ARGUMENTS = re.compile(r'"(?:arguments|parameters)"\s*:\s*')

_FENCED = re.compile(r"\s*```(?:json)?[ \t]*\n(.*?)\n?```\s*$", re.S)
_CALL_START = re.compile(r'\{\s*"name"\s*:')
Span = tuple[int, int]
"""[start, end) character offsets in the reply text."""


@dataclass
class ToolReply:
    """A model's reply read as an OpenAI assistant turn."""

    text: str
    """The reply as generated."""
    content: str
    """The text outside the tool-call blocks, stripped."""
    calls: list[ToolCall] = field(default_factory=list)
    action_spans: list[Span] = field(default_factory=list)
    """Where each call's name and arguments are in `text` (the whole text for a reply without calls)."""
    malformed: bool = False
    """A `<tool_call>` block that is not a JSON object with a name: the reply is no usable action."""

    def message(self) -> dict[str, Any]:
        """The reply as an OpenAI assistant message: `content` (None when empty and there are calls) and
        `tool_calls` with fresh call ids and canonical JSON arguments."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content or (None if self.calls else "")}
        if self.calls:
            out["tool_calls"] = [{"id": call.id, "type": "function",
                                  "function": {"name": call.name, "arguments": call.arguments}}
                                 for call in self.calls]
        return out


def parse_tool_reply(text: str) -> ToolReply:
    """Read `<tool_call>` blocks out of a reply (an unclosed last block is read to the end of the text)."""
    blocks = list(_BLOCK.finditer(text))
    if not blocks:
        fenced = _FENCED.match(text)
        bare = _bare_calls(text, *fenced.span(1)) if fenced else _bare_calls(text)
        if bare is not None:
            return bare
        return ToolReply(text=text, content=text.strip(), action_spans=[(0, len(text))] if text else [])
    calls: list[ToolCall] = []
    spans: list[Span] = []
    malformed = False
    for block in blocks:
        start = block.start(1)
        body = block.group(1)
        found = _read_call(body)
        if found is None:
            malformed = True
            continue
        call, local = found
        calls.append(call)
        spans.extend((start + a, start + b) for a, b in local)
    content = _BLOCK.sub("", text).strip()
    return ToolReply(text=text, content=content, calls=calls, action_spans=spans, malformed=malformed)


def _bare_calls(text: str, start: int = 0, stop: int | None = None) -> ToolReply | None:
    """A reply made only of call objects without their tags (`{"name": ..., "arguments": ...}`, one or more, read
    from `text[start:stop]`): what remains when a tokenizer's `<tool_call>` special tokens are not written out as
    text, or calls written in a fenced json block. None otherwise."""
    decoder = json.JSONDecoder()
    stop = len(text) if stop is None else stop
    at, calls, spans = start, [], []
    while True:
        while at < stop and text[at].isspace():
            at += 1
        if at >= stop:
            break
        if text[at] != "{":
            return None
        try:
            data, end = decoder.raw_decode(text, at)
        except ValueError:  # a call cut short (max_tokens) is no usable action; other text is a plain reply
            cut = calls or _CALL_START.match(text, at) is not None
            return ToolReply(text=text, content="", calls=calls, action_spans=spans, malformed=True) if cut else None
        if not isinstance(data, dict) or not ({"arguments", "parameters"} & set(data)):
            return None
        found = _read_call(text[at:end])
        if found is None:
            return None
        calls.append(found[0])
        spans.extend((at + a, at + b) for a, b in found[1])
        at = end
    return ToolReply(text=text, content="", calls=calls, action_spans=spans) if calls else None


def _read_call(body: str) -> tuple[ToolCall, list[Span]] | None:
    """One block's call and the spans of its name and arguments values, relative to `body`; None when unreadable."""
    decoder = json.JSONDecoder()
    opening = body.find("{")
    if opening < 0:
        return None
    try:
        data, _end = decoder.raw_decode(body, opening)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        arguments = _maybe_json(arguments)
    spans = []
    for pattern in (_NAME, _ARGUMENTS):
        match = pattern.search(body, opening)
        if match is None:
            continue
        try:
            _value, end = decoder.raw_decode(body, match.end())
        except ValueError:
            continue
        spans.append((match.end(), end))
    call = ToolCall(name=data["name"], arguments=canonical_arguments(arguments), id=f"call_{uuid.uuid4().hex[:24]}")
    return call, spans


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def span_logprobs(tokens: list[tuple[str, float]], spans: list[Span]) -> list[float]:
    """The log-probabilities of the tokens that overlap any of `spans` (tokens laid end to end from offset 0)."""
    out, at = [], 0
    for piece, logprob in tokens:
        end = at + len(piece)
        if any(at < b and end > a for a, b in spans):
            out.append(logprob)
        at = end
    return out


def reply_confidence(reply: ToolReply, tokens: list[tuple[str, float]] | None) -> float | None:
    """exp(mean log-probability) of the reply's action tokens: its calls' names and arguments, or every token of a
    reply without calls. None: no log-probabilities, a malformed call, or no action token."""
    if tokens is None or reply.malformed:
        return None
    logprobs = span_logprobs(tokens, reply.action_spans)
    if not logprobs:
        return None
    return math.exp(sum(logprobs) / len(logprobs))


def render_tool_reply(content: str, calls: list[ToolCall] | None) -> str:
    """A reply as a Hermes-style model writes it: its text, then each call as a `<tool_call>` block (the form
    `parse_tool_reply` reads back)."""
    parts = [content.strip()] if content.strip() else []
    for call in calls or []:
        arguments = call.parsed_arguments()
        body = json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)
        parts.append(f"{OPEN}\n{body}\n{CLOSE}")
    return "\n".join(parts)


def same_reply(candidate: str, output: str, calls: list[ToolCall] | None) -> bool:
    """Whether a reply written as the student writes them (`candidate`) does what a recorded reply did: the same calls
    (names and arguments, any order), or, where neither calls a tool, the same text up to whitespace."""
    said = parse_tool_reply(candidate)
    if calls and said.calls:
        return same_tool_calls(said.calls, calls)
    return not calls and not said.calls and squash(said.content) == squash(output)
