"""A persistent Python worker process per episode: variables survive between steps.

Workers are forked from a warm fork server (one per host process), each in its own session,
with a per-call timeout and bounded output. This is NOT a security boundary: see the
sandbox issue for isolation.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import threading
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from agentkd.errors import SandboxError

ToolHandler = Callable[[str, list[Any], dict[str, Any]], Any]

_WORKER_SCRIPT = str(Path(__file__).with_name("worker_main.py"))
# Blocking worker I/O runs here so an asyncio collector can drive many episodes at once.
_EXECUTOR = ThreadPoolExecutor(max_workers=256, thread_name_prefix="agentkd-worker")


@dataclass
class ExecutionResult:
    """What one code execution produced."""

    stdout: str
    error: str | None
    timed_out: bool
    duration: float
    final: bool = False
    answer: Any = None
    restarted: bool = False


class _LineChannel:
    """Reads newline-terminated JSON messages from a pipe with a deadline."""

    def __init__(self, fd: int, max_line: int) -> None:
        self.fd = fd
        self.max_line = max_line
        self.buffer = b""

    def read(self, deadline: float) -> dict[str, Any] | None:
        """Next message, or None on timeout. Raises EOFError if the worker died."""
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise EOFError("worker closed its channel")
            self.buffer += chunk
            if len(self.buffer) > self.max_line and b"\n" not in self.buffer:
                raise EOFError(f"worker sent a message over {self.max_line} bytes")
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise EOFError(f"worker sent malformed data ({exc})") from exc
        if not isinstance(message, dict):
            raise EOFError("worker sent a non-object message")
        return message


class _Zygote:
    """A warm Python process that forks one worker per episode (see worker_main.zygote)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._replies: Any = None

    def _start(self) -> None:
        host_end, child_end = socket.socketpair()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", _WORKER_SCRIPT, str(child_end.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=[child_end.fileno()], env=env, start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"could not start the Python worker ({exc})") from exc
        finally:
            child_end.close()
        self._control = host_end
        self._replies = host_end.makefile("r", encoding="utf-8")

    def spawn(self, tool_names: list[str], cwd: str | None) -> tuple[int, socket.socket]:
        """A new worker process: (pid, host end of its channel)."""
        with self._lock:
            for attempt in (1, 2):
                if self._proc is None or self._proc.poll() is not None:
                    self._start()
                host_end, worker_end = socket.socketpair()
                try:
                    request = json.dumps({"tools": tool_names, "cwd": cwd}).encode()
                    socket.send_fds(self._control, [request], [worker_end.fileno()])  # type: ignore[arg-type]
                    line = self._replies.readline()
                    if not line:
                        raise OSError("fork server closed its channel")
                    return int(json.loads(line)["pid"]), host_end
                except (OSError, ValueError, KeyError) as exc:
                    host_end.close()
                    self._proc = None
                    if attempt == 2:
                        raise SandboxError(f"the Python fork server failed ({exc})") from exc
                finally:
                    worker_end.close()
        raise AssertionError("unreachable")


_ZYGOTE = _Zygote()


class PythonWorker:
    """A persistent Python process that runs agent code and proxies tool calls to the host."""

    def __init__(
        self,
        tool_names: list[str] | None = None,
        tool_handler: ToolHandler | None = None,
        timeout: float = 30.0,
        max_output: int = 10_000,
        max_tool_result: int = 100_000,
        cwd: str | None = None,
    ) -> None:
        self.tool_names = list(tool_names or [])
        self.tool_handler = tool_handler
        self.timeout = timeout
        self.max_output = max_output
        self.max_tool_result = max_tool_result
        self.cwd = cwd
        self.pid: int | None = None
        self._sock: socket.socket | None = None
        self._channel: _LineChannel | None = None

    # lifecycle -----------------------------------------------------------------
    def start(self) -> PythonWorker:
        """Start the worker process (idempotent)."""
        if self._sock is not None:
            return self
        self.pid, self._sock = _ZYGOTE.spawn(self.tool_names, self.cwd)
        self._channel = _LineChannel(self._sock.fileno(), self.max_tool_result + self.max_output + 65536)
        try:
            hello = self._channel.read(time.monotonic() + 30)
        except EOFError as exc:
            self.close()
            raise SandboxError(f"the Python worker died during start-up ({exc})") from exc
        if not hello or hello.get("op") != "ready":
            self.close()
            raise SandboxError("the Python worker did not report ready within 30 s")
        return self

    def close(self) -> None:
        """Kill the worker and every process it started (non-blocking: SIGKILL, then close)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self.pid is not None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        sock.close()

    def __enter__(self) -> PythonWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # execution -----------------------------------------------------------------
    def run(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """Execute `code` in the persistent namespace; never raises for failures of the code."""
        self.start()
        assert self._channel is not None
        limit = self.timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + limit
        try:
            self._send({"op": "exec", "code": code, "max_output": self.max_output})
            while True:
                message = self._channel.read(deadline)
                if message is None:
                    return self._lost(started, f"Execution timed out after {limit:g} s", timed_out=True)
                if message.get("op") == "call":
                    self._send(self._serve_tool_call(message))
                    continue
                if message.get("op") == "done":
                    return ExecutionResult(
                        stdout=str(message.get("stdout", "")),
                        error=message.get("error"),
                        timed_out=False,
                        duration=time.monotonic() - started,
                        final=bool(message.get("final")),
                        answer=message.get("answer"),
                    )
        except (EOFError, BrokenPipeError, OSError) as exc:
            return self._lost(started, f"The Python worker crashed ({exc})", timed_out=False)

    async def arun(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """`run` without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_EXECUTOR, self.run, code, timeout)

    async def astart(self) -> PythonWorker:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_EXECUTOR, self.start)

    # internals -----------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        assert self._sock is not None
        self._sock.sendall((json.dumps(message) + "\n").encode())

    def _serve_tool_call(self, message: dict[str, Any]) -> dict[str, Any]:
        name = message.get("name")
        args = message.get("args", [])
        kwargs = message.get("kwargs", {})
        if name not in self.tool_names or self.tool_handler is None:
            return {"op": "raise", "error": f"unknown tool {name!r}"}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            return {"op": "raise", "error": "malformed tool call"}
        try:
            value = self.tool_handler(str(name), args, kwargs)
        except Exception as exc:  # noqa: BLE001 - a failing tool is an observation, not a crash
            return {"op": "raise", "error": f"{name} failed: {type(exc).__name__}: {exc}"}
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
            encoded = json.dumps(value)
        if len(encoded) > self.max_tool_result:
            value = str(value)[: self.max_tool_result] + "...[truncated]"
        return {"op": "return", "value": value}

    def _lost(self, started: float, what: str, timed_out: bool) -> ExecutionResult:
        self.close()
        return ExecutionResult(
            stdout="",
            error=f"{what}. The Python worker was restarted: all variables from earlier steps were lost.",
            timed_out=timed_out,
            duration=time.monotonic() - started,
            restarted=True,
        )

