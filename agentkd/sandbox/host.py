"""PythonSandbox: a persistent, isolated Python worker per episode (variables survive steps).

Workers are forked from a warm fork server that itself runs inside bubblewrap (see
agentkd.sandbox.isolation for what each mode guarantees). Agent tools stay on the host;
sandboxed code reaches them over a narrow JSON channel.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from agentkd.errors import SandboxError, SandboxStartError
from agentkd.sandbox.isolation import (
    SANDBOX_WORKER_DIR,
    PidsCgroup,
    bwrap_command,
    default_isolation,
    resolve_isolation,
    uid_strategy_problem,
    worker_strategy,
)

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
        except (ValueError, RecursionError) as exc:
            raise EOFError(f"worker sent malformed data ({exc})") from exc
        if not isinstance(message, dict):
            raise EOFError("worker sent a non-object message")
        return message


class SandboxConfig(BaseModel):
    """Isolation and limits of a sandbox. Defaults suit one agent step of short Python."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    isolation: str = Field(
        default_factory=default_isolation,
        description="auto (bwrap, else refuse) | bwrap | none (explicit opt-out); default $AGENTKD_SANDBOX or auto",
    )
    timeout_s: float = Field(30.0, gt=0, description="wall-clock limit per run() call")
    start_timeout_s: float = Field(10.0, gt=0, description="longest wait for the sandbox or a worker to start "
                                   "(a fork server that does not answer in time is replaced)")
    cpu_seconds: int = Field(300, gt=0, description="CPU seconds over the worker's life (RLIMIT_CPU)")
    memory_mb: int = Field(1024, gt=0, description="address space per worker process (RLIMIT_AS)")
    max_processes: int = Field(64, gt=0, description="RLIMIT_NPROC, and the sandbox's pids cgroup")
    max_file_mb: int = Field(32, gt=0, description="largest file a worker may write (RLIMIT_FSIZE)")
    max_open_files: int = Field(256, gt=0, description="RLIMIT_NOFILE")
    tmp_mb: int = Field(256, gt=0, description="size of the sandbox's /tmp (a tmpfs shared by its workers)")
    max_output_chars: int = Field(10_000, gt=0, description="stdout kept per call; the rest is counted")
    max_tool_result_chars: int = Field(100_000, gt=0, description="largest tool result sent back")
    read_only: tuple[str, ...] = Field((), description="host paths mounted read-only at the same place")

    def worker_limits(self) -> dict[str, int]:
        return {
            "cpu_seconds": self.cpu_seconds,
            "memory_bytes": self.memory_mb << 20,
            "max_processes": self.max_processes,
            "max_file_bytes": self.max_file_mb << 20,
            "max_open_files": self.max_open_files,
        }


class ForkServer:
    """A warm Python process (inside the sandbox) that forks one worker per episode.

    Every exchange with it has a deadline (`start_timeout_s`): a server that stops answering is
    killed and replaced by a fresh one instead of being waited on forever.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.isolation = resolve_isolation(config.isolation)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._replies: Any = None
        self._cgroup: PidsCgroup | None = None
        self.workers = "shared"
        """How episodes' workers are kept apart: 'uid', 'pidns' or 'shared' (see agentkd.sandbox.isolation)."""
        self.process_cap = "none"
        """What caps a worker's process count: 'rlimit' (RLIMIT_NPROC, binding because workers never run
        as host uid 0), 'cgroup' (the sandbox's pids cgroup), 'rlimit+cgroup', or 'none'."""
        self.restarts = 0
        self.generation = 0
        """Counts server starts: a worker's pid means something only to the server that started it."""

    def _command(self, fd: int, workers: str) -> list[str]:
        settings = json.dumps({"workers": workers, "uid_base": _uid_base(), "drop_caps": self.isolation == "bwrap"})
        if self.isolation == "bwrap":
            prefix = bwrap_command([Path(p) for p in self.config.read_only], self.config.tmp_mb << 20, workers)
            return [*prefix, sys.executable, "-I", f"{SANDBOX_WORKER_DIR}/worker_main.py", str(fd), settings]
        return [sys.executable, "-I", _WORKER_SCRIPT, str(fd), settings]

    def _start(self) -> None:
        """Start the fork server with the worker strategy this host allows; if the sandbox cannot even
        start with it (an old or setuid bwrap refusing --cap-add), start it with shared workers, loudly.

        Raises SandboxStartError, with the sandbox's own words, when it cannot start either way."""
        asked = worker_strategy(self.isolation)
        try:
            self._start_as(asked)
            return
        except SandboxStartError as exc:
            if asked == "shared":
                raise SandboxStartError(self._start_failure(exc.detail), exc.detail) from exc
            first = exc
        try:
            self._start_as("shared")
        except SandboxStartError as exc:
            detail = (exc.detail if exc.detail == first.detail else
                      f"with per-episode {asked} isolation: {first.detail}; with shared workers: {exc.detail}")
            raise SandboxStartError(self._start_failure(detail), detail) from exc
        _warn_once(f"the sandbox could not start with per-episode {asked} isolation ({first.detail}); started it "
                   "with shared workers: episodes are NOT isolated from each other")

    def _start_failure(self, detail: str) -> str:
        """The message of a sandbox that cannot start: its own words, and what to check."""
        if self.isolation != "bwrap":
            return f"the Python worker's server could not start: {detail}. Check that {sys.executable} runs"
        return (f"the Python sandbox (bubblewrap) could not start: {detail}. Check that bwrap works here "
                f"(bwrap --unshare-all --ro-bind / / true) and that {sys.executable} runs; only if you trust "
                "the code the model writes, opt out with --sandbox none (isolation='none')")

    def _start_as(self, asked: str) -> None:
        # SEQPACKET keeps message boundaries: a kill and a spawn sent back to back stay two requests.
        host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            command = self._command(child_end.fileno(), asked)
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                pass_fds=[child_end.fileno()], env=env, start_new_session=True,
            )
        except (OSError, SandboxError) as exc:  # no bwrap binary, or a path that cannot be mounted
            host_end.close()
            raise SandboxStartError(str(exc), str(exc)) from exc
        finally:
            child_end.close()
        os.set_blocking(self._proc.stderr.fileno(), False)  # type: ignore[union-attr]  # read only what is there
        host_end.settimeout(self.config.start_timeout_s)  # every exchange with the server has a deadline
        self._control = host_end
        self._replies = host_end.makefile("r", encoding="utf-8")
        try:
            line = self._replies.readline()
        except OSError as exc:
            detail = self._stderr(wait_s=0.0)
            self._stop()
            raise SandboxError(
                f"the sandbox did not answer within start_timeout_s={self.config.start_timeout_s:g} s ({exc}"
                f"{'; it said: ' + detail if detail else ''}); raise start_timeout_s on a very slow machine") from exc
        if not line:
            detail = self._stderr() or "it exited without a word"
            self._stop()
            raise SandboxStartError(f"the sandbox exited while starting: {detail}", detail)
        hello = json.loads(line)
        self.generation += 1
        if hello.get("prefix", sys.prefix) != sys.prefix:
            _warn_once(f"the Python inside the sandbox runs with prefix {hello.get('prefix')}, not {sys.prefix} "
                       f"as here: code in it may not see this environment's packages. Run agentkd with the "
                       "virtualenv's own python (not with PYTHONHOME set)")
        cgroup = False
        if os.geteuid() == 0 and self.isolation == "bwrap":
            # after the hello, so that bwrap's own children (and the server) exist and move too; workers inherit it
            self._cgroup = self._cgroup or PidsCgroup(max(64, self.config.max_processes * 16))
            cgroup = all([self._cgroup.add(pid) or not Path(f"/proc/{pid}").exists()  # noqa: C419 - add every pid
                          for pid in _process_tree(self._proc.pid)]) and self._cgroup.path is not None
        self.workers = str(hello.get("workers", "shared"))
        rlimit_binds = self.workers == "uid" or _host_uid(os.geteuid()) != 0  # RLIMIT_NPROC never binds host root
        self.process_cap = "+".join(n for n, on in (("rlimit", rlimit_binds), ("cgroup", cgroup)) if on) or "none"
        if self.isolation == "bwrap" and self.workers == "shared" and worker_strategy_forced() != "shared":
            why = hello.get("why") or uid_strategy_problem() or "unknown reason"
            _warn_once(f"episodes are NOT isolated from each other: {why}; one episode's code could signal or "
                       "stop another's worker. Run as root with bubblewrap >= 0.5, or where bwrap may create user "
                       "namespaces with CAP_SYS_ADMIN inside")
        if self.process_cap == "none":
            why = ("isolation=none runs workers as the host's root" if self.isolation == "none" else
                   f"workers run as uid 0 ({self.workers} strategy)")
            _warn_once(f"NOTHING caps how many processes sandboxed code may start: {why}, RLIMIT_NPROC does not "
                       "bind uid 0, and no writable pids cgroup exists here. A fork bomb could exhaust the host. "
                       "Use isolation=bwrap (on a root host its workers run under uids of their own) or give "
                       "agentkd a writable /sys/fs/cgroup")

    def _exchange(self, message: bytes, fds: list[int] | None = None) -> dict[str, Any]:
        """Send one request and read its reply (under the server's lock, with start_timeout_s)."""
        if fds:
            socket.send_fds(self._control, [message], fds)  # type: ignore[arg-type]
        else:
            self._control.sendall(message)  # type: ignore[union-attr]
        line = self._replies.readline()
        if not line:
            raise OSError(f"the sandbox exited: {self._stderr() or 'it exited without a word'}")
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise ValueError("the sandbox sent a malformed reply")
        return reply

    def spawn(self, tool_names: list[str], cwd: str | None) -> tuple[int, int, socket.socket]:
        """A new worker process: (pid as the fork server sees it, the server's generation, host end of its channel).

        A server that has died or stops answering within start_timeout_s is replaced once."""
        request = json.dumps({
            "tools": tool_names, "cwd": cwd, "limits": self.config.worker_limits(),
        }).encode()
        with self._lock:
            for attempt in (1, 2):
                if self._proc is None or self._proc.poll() is not None:
                    if self._proc is not None:
                        self._stop()
                    self._start()
                host_end, worker_end = socket.socketpair()
                try:
                    reply = self._exchange(request, [worker_end.fileno()])
                    if "pid" not in reply:
                        raise SandboxError(f"the sandbox could not start a worker: {reply.get('error')}")
                    return int(reply["pid"]), self.generation, host_end
                except (OSError, ValueError) as exc:
                    host_end.close()
                    self._stop()
                    self.restarts += 1
                    if attempt == 2:
                        raise SandboxError(
                            f"the Python sandbox failed to start a worker twice ({exc}); it was replaced each "
                            f"time. Check that bwrap works here (bwrap --unshare-all --ro-bind / / true) or raise "
                            f"start_timeout_s (now {self.config.start_timeout_s:g} s) on a very slow machine") from exc
                except SandboxError:
                    host_end.close()
                    raise
                finally:
                    worker_end.close()
        raise AssertionError("unreachable")

    def kill(self, pid: int, generation: int) -> None:
        """SIGKILL a worker's process group (and, under the uid strategy, whatever else runs as its uid).
        A worker of an earlier server generation died with that server: its pid is not sent to the new one."""
        with self._lock:
            if self._control is None or self._proc is None or self._proc.poll() is not None:
                return
            if generation != self.generation:
                return
            try:
                self._control.sendall(json.dumps({"op": "kill", "pid": pid}).encode())
            except OSError:
                pass

    def exit_status(self, pid: int, generation: int, wait: float = 1.0) -> int | None:
        """How a worker ended (a waitpid status), or None if unknown or still running."""
        with self._lock:
            if self._control is None or self._proc is None or self._proc.poll() is not None:
                return None
            if generation != self.generation:
                return None
            try:
                reply = self._exchange(json.dumps({"op": "status", "pid": pid, "wait": wait}).encode())
            except (OSError, ValueError):
                self._stop()
                return None
            status = reply.get("status")
            return int(status) if isinstance(status, int) else None

    def _stderr(self, wait_s: float = 2.0) -> str:
        """What the sandbox (bwrap, the interpreter, the server) has written on stderr, after waiting up to
        `wait_s` for it to exit, with its exit code; "" when it is still running and said nothing."""
        proc = self._proc
        if proc is None or proc.stderr is None:
            return ""
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
        chunks: list[bytes] = []
        while sum(map(len, chunks)) < 1 << 20:
            try:
                chunk = os.read(proc.stderr.fileno(), 1 << 16)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        lines = [line.strip() for line in b"".join(chunks).decode(errors="replace").splitlines() if line.strip()]
        text = " | ".join(lines)  # one line, for messages that must stay one line (a traceback's end matters most)
        text = text if len(text) <= 2000 else "..." + text[-2000:]
        if proc.returncode is None:
            return text
        code = f"exit code {proc.returncode}"
        return f"{text} ({code})" if text else code

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None


def worker_strategy_forced() -> str | None:
    """The strategy AGENTKD_SANDBOX_WORKERS forces, if any."""
    return os.environ.get("AGENTKD_SANDBOX_WORKERS") or None


def _process_tree(pid: int) -> list[int]:
    """A process and all its descendants (host pids)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        try:
            todo += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except OSError:
            pass
    return tree


_WARNED: set[str] = set()
_LOG = logging.getLogger("agentkd.sandbox")


def _warn_once(message: str) -> None:
    """A loud warning, once per process and message."""
    if message not in _WARNED:
        _WARNED.add(message)
        _LOG.warning("agentkd sandbox: %s", message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _id_ranges(kind: str) -> list[tuple[int, int, int]]:
    """This process's user namespace map (/proc/self/uid_map or gid_map): (inside, outside, count) rows."""
    try:
        rows = Path(f"/proc/self/{kind}_map").read_text().split("\n")
    except OSError:
        return [(0, 0, 1 << 32)]
    return [(int(a), int(b), int(c)) for a, b, c in (r.split() for r in rows if r.strip())]


def _host_uid(uid: int) -> int | None:
    """The uid of the initial user namespace that `uid` maps to (one level of nesting), or None."""
    for inside, outside, count in _id_ranges("uid"):
        if inside <= uid < inside + count:
            return outside + uid - inside
    return None


def _uid_base() -> int:
    """First of 4096 uids a fork server's workers run under, random per server so that two sandboxes (or
    agentkd runs) on one host do not share uids or process counts: in [2**30, 2**31), far above real users,
    or, inside a container whose user namespace maps fewer ids, in the upper part of what it maps."""
    def fits(base: int) -> bool:
        return all(any(i <= base and base + 4096 <= i + c for i, _, c in _id_ranges(kind)) for kind in ("uid", "gid"))

    base = (1 << 30) + (secrets.randbelow(1 << 18) << 12)
    if fits(base):
        return base
    for inside, _, count in sorted(_id_ranges("uid"), key=lambda r: -r[2]):
        low, blocks = inside + count // 2, (count // 2 - 8192) // 4096  # the upper half, clear of nobody (65534)
        if blocks > 0:
            base = low + secrets.randbelow(blocks) * 4096
            if fits(base) and not base <= 65534 < base + 4096:
                return base
    return (1 << 30)  # nothing fits: the server's probe fails and says so


def describe_exit(status: int | None, config: SandboxConfig) -> str | None:
    """Say how a worker ended, in words that point at the limit it hit."""
    if status is None:
        return None
    if os.WIFEXITED(status):
        return f"it exited with code {os.WEXITSTATUS(status)}"
    if not os.WIFSIGNALED(status):
        return None
    number = os.WTERMSIG(status)
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    causes: dict[int, str] = {
        signal.SIGXCPU: f"it used up its CPU time, cpu_seconds={config.cpu_seconds}",
        signal.SIGXFSZ: f"it wrote a file larger than max_file_mb={config.max_file_mb}",
        signal.SIGKILL: "by its own code, the kernel's out-of-memory killer, or its hard CPU limit "
                        f"(cpu_seconds={config.cpu_seconds})",
        signal.SIGABRT: f"often a failed allocation: out of memory, memory_mb={config.memory_mb}",
        signal.SIGSEGV: "a segmentation fault",
    }
    why = causes.get(number)
    return f"killed by signal {number} ({name}{': ' + why if why else ''})"


_SERVERS: dict[SandboxConfig, ForkServer] = {}
_SERVERS_LOCK = threading.Lock()


@atexit.register
def _stop_servers() -> None:
    for server in _SERVERS.values():
        server._stop()


def fork_server(config: SandboxConfig) -> ForkServer:
    """The process-wide fork server for a configuration (started on first use)."""
    isolation = resolve_isolation(config.isolation)  # refuses here, every time, if no sandbox exists
    key = config.model_copy(update={"isolation": isolation, "timeout_s": 1.0, "max_output_chars": 1,
                                    "max_tool_result_chars": 1})
    with _SERVERS_LOCK:
        if key not in _SERVERS:
            _SERVERS[key] = ForkServer(key)
        return _SERVERS[key]


class PythonSandbox:
    """An isolated, persistent Python worker: `with PythonSandbox() as sb: r = sb.run(code)`.

    `r` has `stdout`, `error`, `timed_out`, `duration` (and `final`/`answer` when the code
    called final_answer). Failures of the code, timeouts and crashes never raise: they come
    back as an error result, and after a timeout or crash the next call gets a fresh worker.
    """

    def __init__(
        self,
        tool_names: list[str] | tuple[str, ...] = (),
        tool_handler: ToolHandler | None = None,
        config: SandboxConfig | None = None,
        **settings: Any,
    ) -> None:
        base = config or SandboxConfig()
        self.config = SandboxConfig(**{**base.model_dump(), **settings}) if settings else base  # overrides validated
        self.server = fork_server(self.config)
        self.tool_names = list(tool_names)
        self.tool_handler = tool_handler
        self.pid: int | None = None
        self._generation = 0
        self._sock: socket.socket | None = None
        self._channel: _LineChannel | None = None
        self._tmpdir: str | None = None

    @property
    def isolation(self) -> str:
        """'bwrap' or 'none'."""
        return self.server.isolation

    # lifecycle -----------------------------------------------------------------
    def start(self) -> PythonSandbox:
        """Start the worker (idempotent). Raises SandboxUnavailableError / SandboxError."""
        if self._sock is not None:
            return self
        if self.isolation == "none" and self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="agentkd-worker-")
        self.pid, self._generation, self._sock = self.server.spawn(self.tool_names, self._tmpdir)
        limit = self.config.max_tool_result_chars * 6 + self.config.max_output_chars * 6 + 65536
        self._channel = _LineChannel(self._sock.fileno(), limit)
        try:
            hello = self._channel.read(time.monotonic() + self.config.start_timeout_s)
        except EOFError as exc:
            how = describe_exit(self._exit_status(), self.config)
            self.close()
            raise SandboxError(f"the Python worker died during start-up ({how or exc})") from exc
        if not hello or hello.get("op") != "ready":
            self.close()
            raise SandboxError(f"the Python worker did not report ready within start_timeout_s="
                               f"{self.config.start_timeout_s:g} s")
        return self

    def close(self) -> None:
        """Kill the worker and everything it started (non-blocking)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            if self.pid is not None:
                self.server.kill(self.pid, self._generation)
            sock.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> PythonSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # execution -----------------------------------------------------------------
    def run(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """Execute `code` in the persistent namespace; never raises for failures of the code."""
        limit = self.config.timeout_s if timeout is None else timeout
        return self._request({"op": "exec", "code": code}, limit, limit)

    def trial(self, code: str, timeout: float | None = None, tool_handler: ToolHandler | None = None) -> ExecutionResult:
        """Execute `code` in a forked copy of the worker: the persistent namespace is not changed.

        Host-side tools are called through `tool_handler` when given (pass one bound to a copy of the
        episode's state so that stateful tools leave the episode untouched), else through the worker's
        own handler. A trial that times out or crashes leaves the worker intact.
        """
        limit = self.config.timeout_s if timeout is None else timeout
        return self._request({"op": "trial", "code": code, "timeout": limit}, limit, limit + 5.0, tool_handler)

    async def arun(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """`run` without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_EXECUTOR, self.run, code, timeout)

    async def atrial(self, code: str, timeout: float | None = None, tool_handler: ToolHandler | None = None) -> ExecutionResult:
        """`trial` without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_EXECUTOR, self.trial, code, timeout, tool_handler)

    def _request(self, message: dict[str, Any], limit: float, host_limit: float,
                 tool_handler: ToolHandler | None = None) -> ExecutionResult:
        """Send one exec/trial request, serve tool calls until it is done or the deadline passes."""
        self.start()
        assert self._channel is not None
        started = time.monotonic()
        deadline = started + host_limit
        try:
            self._send({**message, "max_output": self.config.max_output_chars})
            while True:
                reply = self._channel.read(deadline)
                if reply is None:
                    return self._lost(started, f"Execution timed out after {limit:g} s", timed_out=True)
                if reply.get("op") == "call":
                    self._send(self._serve_tool_call(reply, tool_handler))
                    continue
                if reply.get("op") == "done":
                    return ExecutionResult(
                        stdout=str(reply.get("stdout", "")),
                        error=reply.get("error"),
                        timed_out=bool(reply.get("timed_out")),
                        duration=time.monotonic() - started,
                        final=bool(reply.get("final")),
                        answer=reply.get("answer"),
                    )
        except (EOFError, BrokenPipeError, OSError) as exc:
            how = describe_exit(self._exit_status(), self.config)
            return self._lost(started, f"The Python worker crashed ({how or exc})", timed_out=False)

    async def astart(self) -> PythonSandbox:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_EXECUTOR, self.start)

    # internals -----------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        assert self._sock is not None
        self._sock.sendall((json.dumps(message) + "\n").encode())

    def _serve_tool_call(self, message: dict[str, Any], handler: ToolHandler | None = None) -> dict[str, Any]:
        handler = handler or self.tool_handler
        name = message.get("name")
        args = message.get("args", [])
        kwargs = message.get("kwargs", {})
        if name not in self.tool_names or handler is None:
            return {"op": "raise", "error": f"unknown tool {name!r}"}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            return {"op": "raise", "error": "malformed tool call"}
        try:
            value = handler(str(name), args, kwargs)
        except Exception as exc:  # noqa: BLE001 - a failing tool is an observation, not a crash
            return {"op": "raise", "error": f"{name} failed: {type(exc).__name__}: {exc}"}
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
            encoded = json.dumps(value)
        limit = self.config.max_tool_result_chars
        if len(encoded) > limit:
            value = str(value)[:limit] + "...[truncated]"
        return {"op": "return", "value": value}

    def _exit_status(self) -> int | None:
        """How this sandbox's worker ended, as its fork server saw it (None when unknown)."""
        return self.server.exit_status(self.pid, self._generation) if self.pid else None

    def _lost(self, started: float, what: str, timed_out: bool) -> ExecutionResult:
        self.close()
        return ExecutionResult(
            stdout="",
            error=f"{what}. The Python worker was restarted: all variables from earlier steps were lost.",
            timed_out=timed_out,
            duration=time.monotonic() - started,
            restarted=True,
        )

