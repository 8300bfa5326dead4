"""A LABELLED FAKE of a paid OpenAI-compatible chat-completions API, for fast gateway tests.

It stands in for a paid API (OpenAI, Anthropic behind an OpenAI-compatible proxy...): no model runs. It answers
`POST /v1/chat/completions` with a scripted tool-using agent over two tools, `get_weather(city)` and
`get_time(city)`: first a call of get_weather, then a call of get_time, then a plain answer that quotes the tool
results. It checks the bearer key like a real API (401 otherwise), reports usage with cached prompt tokens, and keeps
every request body it received so that tests can check what the gateway forwarded.

Offered a tool named `search_contacts` (the apiworld payment agent of tests/test_gateway_langgraph.py), it follows
another script instead: for "Send $AMOUNT to NAME with the note 'NOTE'", search_contacts(NAME), then
send_payment(the id found, AMOUNT, NOTE), then a plain answer.

Triggers in the last user message: `slow` delays the answer by `SLOW_S` seconds (a request in flight at SIGTERM);
`leak` makes it refuse with a 400 whose message quotes the key it was sent (the gateway must redact it).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAKE_KEY = "sk-fake-upstream-5f0c2e9b7a41d3"
"""The key the fake expects; tests check that it appears in no file the gateway writes."""
SLOW_S = 2.0

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "The local time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
]


PAYMENT = re.compile(r"Send \$(?P<amount>[0-9.]+) to (?P<name>.+?) with the note '(?P<note>[^']*)'")


def payment_reply(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The fake payment agent's next message: search_contacts, then send_payment, then the answer."""
    user = next(m for m in messages if m["role"] == "user")
    task = PAYMENT.search(str(user.get("content") or ""))
    if task is None:
        return {"role": "assistant", "content": "I can only send payments."}
    results = [str(m.get("content")) for m in messages if m["role"] == "tool"]
    if not results:
        return _call("search_contacts", {"name": task["name"]}, len(messages))
    if len(results) == 1:
        found = json.loads(results[0])
        if not found:
            return {"role": "assistant", "content": f"No contact is called {task['name']}."}
        return _call("send_payment", {"to": found[0]["id"], "amount": float(task["amount"]), "note": task["note"]},
                     len(messages))
    return {"role": "assistant", "content": f"Sent ${task['amount']} to {task['name']}."}


def _call(name: str, arguments: dict[str, Any], turn: int) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call_{name}_{turn}", "type": "function",
         "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def scripted_reply(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The fake agent's next message: get_weather, then get_time, then the answer (the payment script when it is
    offered `search_contacts`)."""
    if any((t.get("function") or {}).get("name") == "search_contacts" for t in tools or []):
        return payment_reply(messages)
    user = next(m for m in reversed(messages) if m["role"] == "user")
    city = str(user.get("content") or "").split(" in ")[-1].strip(" ?.") or "Paris"
    results = [str(m.get("content")) for m in messages if m["role"] == "tool"]
    done = {c["function"]["name"] for m in messages if m["role"] == "assistant" for c in (m.get("tool_calls") or [])}
    for name in ("get_weather", "get_time"):
        if name not in done:
            call_id = f"call_{name}_{len(messages)}"
            return {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": json.dumps({"city": city})}}]}
    return {"role": "assistant", "content": f"In {city}: " + "; ".join(results)}


class FakeOpenAI:
    """The fake API on a free loopback port, served from a thread: `with FakeOpenAI() as fake: fake.base`."""

    def __init__(self, key: str = FAKE_KEY) -> None:
        self.key = key
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "fake-teacher", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if self.headers.get("authorization") != f"Bearer {fake.key}":
                    self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                               "code": "invalid_api_key"}})
                    return
                fake.requests.append(body)
                last_user = next((str(m.get("content")) for m in reversed(body["messages"]) if m["role"] == "user"), "")
                if "leak" in last_user:
                    self._send(400, {"error": {"message": f"bad request sent with key {fake.key}",
                                               "type": "invalid_request_error"}})
                    return
                if "slow" in last_user:
                    time.sleep(SLOW_S)
                message = scripted_reply(body["messages"], body.get("tools"))
                prompt = sum(len(json.dumps(m)) for m in body["messages"]) // 4
                self._send(200, {
                    "id": f"chatcmpl-fake-{len(fake.requests)}", "object": "chat.completion", "created": 1_700_000_000,
                    "model": body.get("model", "fake-teacher"),
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12,
                              "prompt_tokens_details": {"cached_tokens": prompt // 2}}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
