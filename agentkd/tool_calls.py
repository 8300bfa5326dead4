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
