"""Entry point of the Python worker process (runs in the child, stdlib only).

Protocol: JSON lines. The host writes requests on the child's stdin; the child answers on
its stdout. User code never sees those two descriptors: fd 0/1/2 are re-pointed to
/dev/null and sys.stdout/sys.stderr capture into a bounded buffer per execution.
"""

import ast
import json
import os
import sys
import traceback


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


def _execute(code, namespace, max_output):
    """Run code in the namespace; the result message (stdout, error, final answer)."""
    buffer = BoundedBuffer(max_output)
    sys.stdout = sys.stderr = buffer
    error = None
    final = False
    answer = None
    try:
        tree = ast.parse(code, "<agent>", "exec")
        last_expr = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last_expr = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<agent>", "exec"), namespace)
        if last_expr is not None:
            value = eval(compile(last_expr, "<agent>", "eval"), namespace)
            if value is not None:
                buffer.write(repr(value) + "\n")
    except FinalAnswer as fa:
        final, answer = True, _jsonable(fa.value)
    except SyntaxError as exc:
        error = "SyntaxError: %s (line %s)" % (exc.msg, exc.lineno)
    except BaseException as exc:  # noqa: BLE001 - report every failure of user code
        tb = traceback.extract_tb(exc.__traceback__)
        frames = [f for f in tb if f.filename == "<agent>"]
        where = " (line %d)" % frames[-1].lineno if frames else ""
        error = "%s: %s%s" % (type(exc).__name__, exc, where)
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    return {"op": "done", "stdout": buffer.getvalue(), "error": error, "final": final, "answer": answer}


def _trial(request, namespace, max_output, send):
    """Run code in a forked copy of this worker: the episode's variables are left untouched."""
    import time

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
            resource.setrlimit(which, (int(value), int(value)))


def _not_dumpable():
    """No ptrace, no /proc/<pid>/mem or environ for other processes of the same user."""
    _libc().prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def _start_worker(request, channel_fd, report_fd):
    """In a fresh child of the fork server: own session, limits, private dir, not dumpable; serve."""
    import socket

    os.setsid()
    _set_limits(request.get("limits") or {})
    workdir = request.get("cwd") or "/tmp/worker-%d" % os.getpid()
    if not os.path.isdir(workdir):
        os.mkdir(workdir, 0o700)
    os.chdir(workdir)
    _not_dumpable()
    os.write(report_fd, str(os.getpid()).encode())
    os.close(report_fd)
    channel = socket.socket(fileno=channel_fd)
    serve(channel.makefile("r", encoding="utf-8"), channel.makefile("w", encoding="utf-8"), request.get("tools", []))


def zygote(control_fd):
    """Fork server. Requests on the control socket:

    - spawn: JSON + one socket (SCM_RIGHTS); a forked child serves it; reply {"pid": N}.
    - kill: {"op": "kill", "pid": N}; SIGKILL to the worker's process group (its session).

    Forking a warm interpreter costs ~1 ms where a fresh `python` costs ~20 ms of CPU.
    """
    import signal
    import socket

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, 65536, 1)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)
        request = json.loads(message)
        if request.get("op") == "kill":
            for kill in (os.killpg, os.kill):
                try:
                    kill(int(request["pid"]), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            continue
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            control.close()
            os.close(report_r)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                _start_worker(request, fds[0], report_w)
            except BaseException as exc:  # noqa: BLE001 - report set-up failures, never return to the loop
                try:
                    os.write(report_w, ("error: %s" % exc).encode())
                except OSError:
                    pass
            finally:
                os._exit(0)
        os.close(report_w)
        for fd in fds:
            os.close(fd)
        report = os.read(report_r, 4096).decode()
        os.close(report_r)
        reply = {"pid": int(report)} if report.isdigit() else {"error": report or "worker died during set-up"}
        control.sendall((json.dumps(reply) + "\n").encode())


if __name__ == "__main__":
    zygote(int(sys.argv[1]))
