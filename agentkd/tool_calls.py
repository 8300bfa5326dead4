"""Tool-call actions (the OpenAI `tool_calls` format): reading them from chat messages, and their canonical form for
agreement and deduplication.

Two lists of calls agree when they call the same tools with the same arguments: argument objects are compared as
canonical JSON (keys sorted, no spacing), call ids are ignored, and the order of the calls is ignored (calls made in
one turn are independent: the model receives all their results together).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from agentkd.records import ToolCall

NormalizedCall = tuple[str, str]
"""(tool name, arguments as canonical JSON)."""


def canonical_arguments(arguments: Any) -> str:
    """Arguments as canonical JSON: a JSON text or a value, keys sorted, no spacing. Text that is not valid JSON is
    kept as written (stripped), so that two identical invalid texts still agree."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return arguments.strip()
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalize_tool_calls(calls: Iterable[ToolCall | dict[str, Any]]) -> tuple[NormalizedCall, ...]:
    """The calls' canonical form: (name, canonical arguments) pairs, sorted, ids dropped. Accepts `ToolCall`s or
    OpenAI call dicts (`{"function": {"name", "arguments"}}` or `{"name", "arguments"}`)."""
    out = []
    for call in calls:
        parsed = call if isinstance(call, ToolCall) else tool_call_from_openai(call)
        out.append((parsed.name, canonical_arguments(parsed.arguments)))
    return tuple(sorted(out))


def same_tool_calls(a: Iterable[ToolCall | dict[str, Any]], b: Iterable[ToolCall | dict[str, Any]]) -> bool:
    """Whether two lists of calls agree: same names and canonical arguments, in any order, ids ignored."""
    return normalize_tool_calls(a) == normalize_tool_calls(b)


def tool_call_from_openai(call: dict[str, Any]) -> ToolCall:
    """A `ToolCall` from one entry of an OpenAI message's `tool_calls` (arguments given as text or as an object)."""
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    arguments = function.get("arguments")
    if arguments is None:
        arguments = "{}"
    elif not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(name=str(function.get("name") or ""), arguments=arguments, id=call.get("id"))


def tool_calls_of(message: dict[str, Any]) -> list[ToolCall] | None:
    """The tool calls of an assistant message (OpenAI format), or None when it makes none."""
    calls = message.get("tool_calls") or []
    return [tool_call_from_openai(c) for c in calls if isinstance(c, dict)] or None


def message_text(content: Any) -> str:
    """A message's content as text: a string as is, the text parts of a content list joined, None as ""."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                parts.append(json.dumps(part, sort_keys=True, ensure_ascii=False))
        return "".join(parts)
    return json.dumps(content, sort_keys=True, ensure_ascii=False)


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages as Hugging Face chat templates expect them: text contents, `developer` as `system`, the
    assistant's tool calls with their arguments as objects, tool results with their call ids and names."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        item: dict[str, Any] = {"role": "system" if role == "developer" else role,
                                "content": message_text(message.get("content"))}
        calls = message.get("tool_calls") or []
        if role == "assistant" and calls:
            item["tool_calls"] = [template_call(call) for call in calls if isinstance(call, dict)]
        if role == "tool" and message.get("tool_call_id"):
            item["tool_call_id"] = message["tool_call_id"]
        if message.get("name") and role == "tool":
            item["name"] = message["name"]
        out.append(item)
    return out


def template_call(call: dict[str, Any]) -> dict[str, Any]:
    """One OpenAI tool call for a chat template: arguments parsed into an object when they are JSON."""
    function = call.get("function") or {}
    arguments: Any = function.get("arguments") or "{}"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # kept as written
    out: dict[str, Any] = {"type": "function", "function": {"name": function.get("name"), "arguments": arguments}}
    if call.get("id"):
        out["id"] = call["id"]
    return out
