"""A local OpenAI-compatible chat endpoint that answers with an environment's reference solver.

LABELLED STAND-IN: it plays the part of a paid API teacher (which cannot be reached here) so
litellm's real HTTP path can be exercised and benchmarked offline. It sleeps `delay_s` per
request to imitate model latency, and can fail the first requests with a chosen HTTP status.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from aiohttp import web

from agentkd.codeact.prompts import OBSERVATION_PREFIX
from agentkd.env.environment import Environment
from agentkd.policies.reference import replay_reference


class FakeOpenAIServer:
    """Serve POST /v1/chat/completions on 127.0.0.1 from a background thread."""

    def __init__(self, env: Environment, delay_s: float = 0.0, fail_first: int = 0, fail_status: int = 500) -> None:
        self.env = env
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.requests = 0
        self.request_times: list[float] = []
        """time.monotonic() of every request, as it arrived."""
        self._tasks = {t.prompt: t for split in env.splits for t in env.tasks(split)}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)  # type: ignore[union-attr]
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _chat(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.request_times.append(time.monotonic())
        if self.requests <= self.fail_first:
            return web.json_response({"error": {"message": "injected failure", "type": "server_error"}},
                                     status=self.fail_status)
        body = await request.json()
        messages: list[dict[str, Any]] = body["messages"]
        users = [m["content"] for m in messages if m["role"] == "user"]
        task = self._tasks.get(users[0])
        if task is None:
            return web.json_response({"error": {"message": "unknown task", "type": "invalid_request_error"}}, status=400)
        observations = [u[len(OBSERVATION_PREFIX):] for u in users[1:]]
        text = replay_reference(self.env, task, observations)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        prompt_tokens = sum(len(str(m["content"])) for m in messages) // 4
        completion_tokens = len(text) // 4
        return web.json_response({
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "reference-stub"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })


class FakeOpenAIServerProcess:
    """The same server in a child process, so its CPU time does not share our GIL (for benchmarks)."""

    def __init__(self, env_spec: str, delay_s: float = 0.0) -> None:
        self.env_spec = env_spec
        self.delay_s = delay_s
        self.api_base = ""
        self._proc: Any = None

    def __enter__(self) -> FakeOpenAIServerProcess:
        import subprocess
        import sys

        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--env", self.env_spec, "--delay", str(self.delay_s)],
            stdout=subprocess.PIPE, text=True,
        )
        line = self._proc.stdout.readline()
        if not line.startswith("http://"):
            self._proc.kill()
            raise RuntimeError(f"fake server failed to start: {line!r}")
        self.api_base = line.strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(10)


if __name__ == "__main__":
    import argparse

    from agentkd.env.loading import load_environment

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="factqa")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    with FakeOpenAIServer(load_environment(args.env), delay_s=args.delay) as server:
        print(server.api_base, flush=True)
        threading.Event().wait()
