"""Entry point of the Python worker process (runs in the child, stdlib only).

Protocol: JSON lines. The host writes requests on the child's stdin; the child answers on
its stdout. User code never sees those two descriptors: fd 0/1/2 are re-pointed to
/dev/null and sys.stdout/sys.stderr capture into a bounded buffer per execution.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import select
import shutil
import signal
import socket
import sys
import time
import traceback

TYPE_CHECKING = False  # typing is not imported at run time: the fork server starts light, stdlib only
if TYPE_CHECKING:
    from typing import Any, NoReturn

_MAX_PROCESSES = 0  # this worker's process limit, named in the error when a fork fails for it


class FinalAnswer(BaseException):
    """Raised by final_answer(); BaseException so `except Exception` in user code can't swallow it."""

    def __init__(self, value):
        self.value = value


class BoundedBuffer:
    """A text sink that keeps the first `limit` characters and counts the rest."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.kept = 0
        self.dropped = 0

    def write(self, text):
        if not isinstance(text, str):
            text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def getvalue(self):
        text = "".join(self.parts)
        if self.dropped:
            text += "\n...[output truncated: %d more characters]" % self.dropped
        return text


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def serve(chan_in, chan_out, tool_names):
    """Answer exec requests on the channel until it closes."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)

    def send(message):
        chan_out.write(json.dumps(message) + "\n")
        chan_out.flush()

    def receive():
        line = chan_in.readline()
        if not line:
            os._exit(0)
        return json.loads(line)

    def make_tool(name):
        def call(*args, **kwargs):
            send({"op": "call", "name": name, "args": [_jsonable(a) for a in args],
                  "kwargs": {k: _jsonable(v) for k, v in kwargs.items()}})
            reply = receive()
            if reply.get("op") == "raise":
                raise RuntimeError(reply.get("error", "tool failed"))
            return reply.get("value")

        call.__name__ = name
        return call

    def final_answer(value):
        """End the episode with `value` as the answer."""
        raise FinalAnswer(value)

    namespace = {"__name__": "__main__", "final_answer": final_answer}
    for name in tool_names:
        namespace[name] = make_tool(name)

    send({"op": "ready", "pid": os.getpid()})
    while True:
        request = receive()
        op = request.get("op")
        max_output = int(request.get("max_output", 10000))
        if op == "exec":
            send(_execute(request.get("code", ""), namespace, max_output))
        elif op == "trial":
            _trial(request, namespace, max_output, send)


def _show(value, last):
    if isinstance(value, str):
        print(value)
    elif last and value is not None:
        print(repr(value))


def _is_print(node):
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"


def _shown(node, last):
    call = ast.Call(func=ast.Name(id="__agentkd_show__", ctx=ast.Load()), args=[node.value, ast.Constant(last)],
                    keywords=[])
    return ast.copy_location(ast.Expr(value=call), node)


def _execute(code, namespace, max_output):
    """Run code in the namespace; the result message (stdout, error, final answer)."""
    buffer = BoundedBuffer(max_output)
    sys.stdout = sys.stderr = buffer
    error = None
    final = False
    answer = None
    try:
        tree = ast.parse(code, "<agent>", "exec")
        namespace["__agentkd_show__"] = _show
        # Like a notebook cell the last bare expression is shown, and so is any earlier bare expression whose value
        # is text (a model that writes `search(a)` then `search(b)` without print sees both); text shows as text.
        last = len(tree.body) - 1
        tree.body = [_shown(node, i == last) if isinstance(node, ast.Expr) and not _is_print(node.value) else node
                     for i, node in enumerate(tree.body)]
        exec(compile(ast.fix_missing_locations(tree), "<agent>", "exec"), namespace)
    except FinalAnswer as fa:
        final, answer = True, _jsonable(fa.value)
    except SyntaxError as exc:
        error = "SyntaxError: %s (line %s)" % (exc.msg, exc.lineno)
    except BaseException as exc:  # noqa: BLE001 - report every failure of user code
        tb = traceback.extract_tb(exc.__traceback__)
        frames = [f for f in tb if f.filename == "<agent>"]
        where = " (line %d)" % frames[-1].lineno if frames else ""
        error = "%s: %s%s" % (type(exc).__name__, exc, where)
        if isinstance(exc, OSError) and exc.errno == errno.EAGAIN and _MAX_PROCESSES:
            error += (" (if this came from starting a process: a worker may hold at most %d processes, "
                      "max_processes)" % _MAX_PROCESSES)
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    return {"op": "done", "stdout": buffer.getvalue(), "error": error, "final": final, "answer": answer}


def _trial(request, namespace, max_output, send):
    """Run code in a forked copy of this worker: the episode's variables are left untouched."""
    pid = os.fork()
    if pid == 0:
        try:
            send(_execute(request.get("code", ""), namespace, max_output))
        finally:
            os._exit(0)
    deadline = time.monotonic() + float(request.get("timeout", 10))
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if status != 0:  # the copy died before it could answer
                send({"op": "done", "stdout": "", "error": "the trial run crashed", "final": False, "answer": None})
            return
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            send({"op": "done", "stdout": "", "error": "the trial run timed out", "final": False, "answer": None,
                  "timed_out": True})
            return
        time.sleep(0.002)


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _set_limits(limits):
    import resource

    global _MAX_PROCESSES
    names = {
        "cpu_seconds": resource.RLIMIT_CPU,
        "memory_bytes": resource.RLIMIT_AS,
        "max_processes": resource.RLIMIT_NPROC,
        "max_file_bytes": resource.RLIMIT_FSIZE,
        "max_open_files": resource.RLIMIT_NOFILE,
    }
    for key, which in names.items():
        value = limits.get(key)
        if value:
            # CPU: the soft limit sends SIGXCPU (reported as such), the hard one a second later SIGKILL
            hard = int(value) + 1 if key == "cpu_seconds" else int(value)
            resource.setrlimit(which, (int(value), hard))
    _MAX_PROCESSES = int(limits.get("max_processes") or 0)


def _not_dumpable():
    """No ptrace, no /proc/<pid>/mem or environ for other processes of the same user."""
    _libc().prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def _become(uid):
    """Drop to an unprivileged uid/gid of this worker's own: every capability goes with uid 0."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _drop_capabilities():
    """Clear the permitted, effective and inheritable sets (and with them the ambient set)."""
    import ctypes

    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    if _libc().capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


_PIDNS_DIRS = "/tmp/w"  # pidns strategy: every worker's dir is in here; each worker sees only its own
CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000


def _private_pid_namespace():
    """In a child of the fork server: the next fork becomes pid 1 of a new pid namespace (and gets
    its own /proc where the kernel allows it). Returns whether a mount namespace came with it."""
    import ctypes

    libc = _libc()
    if libc.unshare(CLONE_NEWPID | CLONE_NEWNS) == 0:
        return True
    if libc.unshare(CLONE_NEWPID) == 0:
        return False
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWPID) failed")


def _mount_own_proc():
    """Best effort: a /proc that shows only this pid namespace."""
    libc = _libc()
    libc.mount(None, b"/", None, 16384 | (1 << 18), None)  # MS_REC | MS_PRIVATE
    libc.mount(b"proc", b"/proc", b"proc", 2 | 4 | 8, None)  # MS_NOSUID | MS_NODEV | MS_NOEXEC


def _start_worker(request, channel_fd, report_fd, uid, drop_caps, workdir, make_dir):
    """In a fresh child of the fork server: own session, limits, own uid (or pid namespace), no
    capabilities, private dir, not dumpable; report "ok <pid>" and serve."""
    os.setsid()
    _set_limits(request.get("limits") or {})
    if uid:
        _become(uid)
    if uid or drop_caps:
        _drop_capabilities()
    if make_dir:  # 0700, under the worker's own uid, with a name no other worker could have made first
        os.mkdir(workdir, 0o700)
    os.chdir(workdir)
    _not_dumpable()
    os.write(report_fd, ("ok %d\n" % os.getpid()).encode())
    os.close(report_fd)
    channel = socket.socket(fileno=channel_fd)
    serve(channel.makefile("r", encoding="utf-8"), channel.makefile("w", encoding="utf-8"), request.get("tools", []))


def _namespace_init(request, channel_fd, report_fd, own_mounts, drop_caps, status_fd, workdir, make_dir):
    """Pid 1 of a worker's own pid namespace: starts the worker as pid 2 (a pid 1 could not be killed
    by its own signals, SIGXCPU included), reaps orphans, and when the worker ends writes its waitpid
    status for the fork server, then exits, which ends every process left in the namespace.

    Workers of this strategy share a uid, so each sees its own dir, and only it, at /tmp/w (a bind
    mount over the folder that holds every worker's dir, in its own mount namespace)."""
    os.setsid()
    if own_mounts:
        _mount_own_proc()
        if make_dir:
            os.mkdir(workdir, 0o700)
            make_dir = False
            if _libc().mount(workdir.encode(), _PIDNS_DIRS.encode(), None, 4096, None) == 0:  # MS_BIND
                workdir = _PIDNS_DIRS
    worker = os.fork()
    if worker == 0:
        os.close(status_fd)
        _start_worker(request, channel_fd, report_fd, 0, drop_caps, workdir, make_dir)
        os._exit(0)
    os.close(channel_fd)  # the host must see EOF when the worker dies, and the server the report's end
    os.close(report_fd)
    if drop_caps:
        _drop_capabilities()
    _not_dumpable()  # the worker runs under the same uid: it must not ptrace its init
    status = 0
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid == worker:
            break
    os.write(status_fd, ("%d\n" % status).encode())
    os._exit(0)


def _probe(workers, uid_base):
    """Whether this server can isolate workers as asked: (strategy in force, why not when it fell back)."""
    if workers == "shared":
        return "shared", ""
    pid = os.fork()
    if pid == 0:
        try:
            if workers == "uid":
                _become(uid_base)
            else:
                _private_pid_namespace()
                if os.fork() == 0:
                    os._exit(0)
        except BaseException:  # noqa: BLE001 - any failure means: not available
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status == 0:
        return workers, ""
    how = "switch workers to their own uid" if workers == "uid" else "give workers their own pid namespace"
    return "shared", "the sandbox could not %s" % how


class Zygote:
    """The fork server: its state, and one handler per request it answers on the control socket.

    It says {"op": "ready", "workers": strategy, "why": why, "prefix": sys.prefix} first, then answers:

    - spawn: JSON with no "op" (any op but kill and status) + one socket (SCM_RIGHTS); a forked child serves
      it; reply {"pid": N} or {"error": why}.
    - kill: {"op": "kill", "pid": N}; SIGKILL to the worker's process group (its session), and with the
      uid strategy to every process left under the worker's uid (found in /proc); no reply.
    - status: {"op": "status", "pid": N, "wait": s}; reply {"status": waitpid status or null if still running}.

    Worker strategies: "uid" (each worker under a uid of its own, no capabilities: it cannot signal or
    trace any other process of the sandbox, and RLIMIT_NPROC binds even for a root host), "pidns" (each
    worker runs in a pid and mount namespace of its own, under a small init; for non-root hosts, where
    every worker has the user's uid) or "shared" (one trust domain: none mode).
    Forking a warm interpreter costs ~1 ms where a fresh `python` costs ~20 ms of CPU.
    """

    def __init__(self, control_fd: int, settings: dict[str, Any]) -> None:
        """Take the control socket and set the server up for the strategy it can give (it says nothing yet)."""
        self.uid_base = int(settings.get("uid_base") or 0)
        self.drop_caps = bool(settings.get("drop_caps"))
        self.control = socket.socket(fileno=control_fd)
        _libc().prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of workers come back here to be reaped
        self.workers, self.why = _probe(settings.get("workers", "shared"), self.uid_base)
        _not_dumpable()  # under the pidns strategy workers share the server's uid: no ptrace, no /proc/<pid>/mem
        if self.workers == "uid":
            os.chmod("/tmp", 0o1777)  # workers create their private dirs in it under their own uid
        if self.workers == "pidns":
            os.mkdir(_PIDNS_DIRS, 0o700)
        self.statuses: dict[int, int] = {}  # waitpid status of each reaped child, the latest 4096
        self.uids: dict[int, int] = {}  # uid strategy: worker pid -> its uid
        self.status_pipes: dict[int, int] = {}  # pidns: a worker's status comes from its namespace's init
        self.workdirs: dict[int, str] = {}  # worker pid -> the dir made for it, removed when it is killed
        self.serial = 0  # the last uid handed out, as an offset from uid_base

    def serve_forever(self) -> NoReturn:
        """Say ready, then answer requests until the control socket closes."""
        # dead workers (and orphans of theirs, which come here) are reaped at once: a zombie still holds a pid
        signal.signal(signal.SIGCHLD, self.reap)
        self._send({"op": "ready", "workers": self.workers, "why": self.why, "prefix": sys.prefix})
        while True:
            try:
                message, fds, _flags, _addr = socket.recv_fds(self.control, 65536, 1)
            except OSError:
                os._exit(0)
            if not message:
                os._exit(0)
            self.reap()
            request = json.loads(message)
            op = request.get("op")
            if op == "kill":
                self.handle_kill(request)
            elif op == "status":
                self.handle_status(request)
            else:  # a spawn request names no op
                self.handle_spawn(request, fds)

    def handle_spawn(self, request: dict[str, Any], fds: list[int]) -> None:
        """Fork a worker that serves the socket in `fds`; reply {"pid": N} or {"error": why}."""
        uid = self._free_uid()
        if uid is None:
            self._send({"error": "4096 workers are alive in this sandbox; close some"})
            for fd in fds:
                os.close(fd)
            return
        make_dir = not request.get("cwd")
        parent = "%s/" % _PIDNS_DIRS if self.workers == "pidns" else "/tmp/worker-"
        workdir = request.get("cwd") or parent + os.urandom(8).hex()
        report_r, report_w = os.pipe()
        status_r, status_w = os.pipe() if self.workers == "pidns" else (-1, -1)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.control.close()
            os.close(report_r)
            self._become_worker(request, fds, uid, workdir, make_dir, report_w, status_r, status_w)
        os.close(report_w)
        if status_w >= 0:
            os.close(status_w)
        for fd in fds:
            os.close(fd)
        reply = _spawn_reply(_read_to_end(report_r).decode(errors="replace"))
        if "pid" in reply and uid:
            self.uids[reply["pid"]] = uid
        if "pid" in reply and make_dir:
            self.workdirs[reply["pid"]] = workdir
        if "pid" in reply and status_r >= 0:
            self.status_pipes[reply["pid"]] = status_r
        elif status_r >= 0:
            os.close(status_r)
        self._send(reply)

    def handle_kill(self, request: dict[str, Any]) -> None:
        """SIGKILL a worker's session (and, uid strategy, whatever still runs under its uid); remove its dir."""
        pid = int(request["pid"])
        if pid in self.status_pipes:
            os.close(self.status_pipes.pop(pid))
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        uid = self.uids.pop(pid, 0)
        if uid:  # anything it started that left its session still runs under its uid, alone
            self._kill_uid(uid)
        workdir = self.workdirs.pop(pid, None)
        if workdir:  # what it wrote must not fill the sandbox's /tmp for later episodes
            self._remove_dir(workdir, uid)

    def handle_status(self, request: dict[str, Any]) -> None:
        """Reply {"status": how the worker ended (a waitpid status), or null if it still runs after `wait` s}."""
        pid, wait = int(request["pid"]), float(request.get("wait", 0))
        status = self._status_from_init(pid, wait) if pid in self.status_pipes else self._status_from_reaped(pid, wait)
        self._send({"status": status})

    def reap(self, *_signal: object) -> None:
        """Collect every child that has ended, keeping its status for `status` (also SIGCHLD's handler)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.statuses[pid] = status
            if len(self.statuses) > 4096:
                del self.statuses[next(iter(self.statuses))]

    def _send(self, message: dict[str, Any]) -> None:
        self.control.sendall((json.dumps(message) + "\n").encode())

    def _free_uid(self) -> int | None:
        """The uid for a new worker: under the uid strategy the next of the range that no live worker holds
        (None when every one is held), else 0."""
        if self.workers != "uid":
            return 0
        live = set(self.uids.values())
        for _ in range(4096):
            self.serial += 1
            uid = self.uid_base + self.serial % 4096
            if uid not in live:
                return uid
        return None

    def _become_worker(self, request: dict[str, Any], fds: list[int], uid: int, workdir: str, make_dir: bool,
                       report_w: int, status_r: int, status_w: int) -> NoReturn:
        """In the spawn's child: start the worker (pidns: the init of its namespace, which starts it) and
        report on `report_w` how that went; never returns to the server's loop."""
        try:
            if self.workers == "pidns":
                os.close(status_r)
                own_mounts = _private_pid_namespace()
                inner = os.fork()
                if inner:
                    os.write(report_w, ("pid %d\n" % inner).encode())
                    os._exit(0)
                _namespace_init(request, fds[0], report_w, own_mounts, self.drop_caps, status_w, workdir, make_dir)
            else:
                _start_worker(request, fds[0], report_w, uid, self.drop_caps, workdir, make_dir)
        except BaseException as exc:  # noqa: BLE001 - report set-up failures, never return to the loop
            try:
                os.write(report_w, ("error: %s\n" % exc).encode())
            except OSError:
                pass
        finally:
            os._exit(0)

    def _kill_uid(self, uid: int) -> None:
        """SIGKILL every process that runs under `uid` (found in /proc)."""
        for _ in range(3):  # a process forking while it is being killed is caught on the next pass
            found = False
            for name in os.listdir("/proc"):
                if name.isdigit():
                    try:
                        if os.stat("/proc/" + name).st_uid == uid:
                            os.kill(int(name), signal.SIGKILL)
                            found = True
                    except OSError:
                        pass
            if not found:
                break
            self.reap()  # the ones just killed that were ours stop showing up in /proc

    def _remove_dir(self, workdir: str, uid: int) -> None:
        """Remove a killed worker's dir: at once when empty, else in a child beside the server."""
        try:
            os.rmdir(workdir)
        except OSError:
            if os.fork() == 0:  # a big tree is removed beside the server, which keeps answering
                try:
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    if uid:
                        _become(uid)  # the dir is the worker's, 0700 (the server may not read it)
                    shutil.rmtree(workdir, ignore_errors=True)
                finally:
                    os._exit(0)

    def _status_from_init(self, pid: int, wait: float) -> int | None:
        """pidns: the status the worker's init writes on its pipe when the worker ends (read once)."""
        fd = self.status_pipes.pop(pid)
        ready, _, _ = select.select([fd], [], [], wait)
        text = os.read(fd, 64).decode().strip() if ready else ""
        os.close(fd)
        return int(text) if text.lstrip("-").isdigit() else None

    def _status_from_reaped(self, pid: int, wait: float) -> int | None:
        """The status reap() kept for the worker, waiting up to `wait` s for it to end (read once)."""
        deadline = time.monotonic() + wait
        while pid not in self.statuses and time.monotonic() < deadline:
            time.sleep(0.005)
            self.reap()
        return self.statuses.pop(pid, None)


def zygote(control_fd: int, settings: dict[str, Any] | None = None) -> NoReturn:
    """Run the fork server (see Zygote) on the control socket `control_fd`."""
    Zygote(control_fd, settings or {}).serve_forever()


def _read_to_end(fd: int) -> bytes:
    """Everything written on a pipe until its last writer closes it; closes `fd`."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data


def _spawn_reply(report):
    """The fork server's answer to a spawn, from what the new worker (and its parent) reported."""
    lines = report.split("\n")
    pid = next((int(line.split()[1]) for line in lines if line.startswith("pid ")), None)
    for line in lines:
        if line.startswith("ok ") and line[3:].isdigit():
            return {"pid": pid or int(line[3:])}
    errors = [line for line in lines if line.startswith("error")]
    return {"error": errors[0] if errors else "worker died during set-up"}


if __name__ == "__main__":
    zygote(int(sys.argv[1]), json.loads(sys.argv[2]) if len(sys.argv) > 2 else None)
