"""Which conversation a request continues: messages in canonical form and digests of every prefix.

A client that runs an agent resends the whole conversation each time: the earlier messages, the reply it got, and
what followed (tool results, a user turn). Two requests belong to the same episode when the later one's messages
start with the earlier one's messages plus its reply. Messages are compared in a canonical form, so that the
re-sent reply matches the one the gateway returned although the client's SDK re-serialised it (`content: null`
for "", extra null fields, arguments re-spaced).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agentkd.tool_calls import canonical_arguments, message_text, tool_calls_of


def canonical_message(message: dict[str, Any]) -> str:
    """One message as canonical JSON: role, text content, tool calls (id, name, canonical arguments), tool call id
    and name; fields an SDK adds with null or empty values are left out."""
    data: dict[str, Any] = {"role": message.get("role"), "content": message_text(message.get("content"))}
    calls = tool_calls_of(message)
    if calls:
        data["tool_calls"] = [[c.id, c.name, canonical_arguments(c.arguments)] for c in calls]
    for key in ("tool_call_id", "name"):
        if message.get(key):
            data[key] = message[key]
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def prefix_digests(messages: list[dict[str, Any]]) -> list[str]:
    """`out[k]` is the digest of `messages[:k + 1]`: a hash chain, so every prefix costs one hash."""
    out: list[str] = []
    digest = hashlib.sha256()
    for message in messages:
        digest.update(canonical_message(message).encode())
        digest.update(b"\n")
        out.append(digest.copy().hexdigest())
    return out
