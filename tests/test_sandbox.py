"""PythonSandbox: behaviour, and adversarial code that must stay contained (bwrap mode).

Every attack is followed by a check that the host and the sandbox still work.
"""

import os
import shutil
import socket
import threading
import time

import pytest

from agentkd import PythonSandbox, SandboxConfig, SandboxUnavailableError
from agentkd.sandbox.isolation import bwrap_problem  # noqa: E402

HAS_BWRAP = bwrap_problem() is None
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP, reason=f"no working bubblewrap here: {bwrap_problem()}")


def handler(name, args, kwargs):
    if name == "boom":
        raise ValueError("bad input")
    if name == "big":
        return "y" * 500_000
    return {"echo": args, "kw": kwargs}


def still_fine(sb: PythonSandbox) -> None:
    """The sandbox answers again and the host runs. A worker the attack took down reports one
    crash (an error observation: its state is lost), then the next call gets a fresh worker."""
    r = sb.run("print(6 * 7)")
    if r.restarted:
        assert "crashed" in r.error and "lost" in r.error
        r = sb.run("print(6 * 7)")
    assert r.stdout == "42\n" and r.error is None
    assert os.getpid() > 0


@pytest.fixture(params=["bwrap", "none"] if HAS_BWRAP else ["none"])
def isolation(request):
    return request.param


# --- behaviour -----------------------------------------------------------------------------


def test_variables_persist_and_last_expression_is_shown(isolation):
    with PythonSandbox(isolation=isolation) as sb:
        assert sb.run("x = 40").stdout == ""
        r = sb.run("x + 2")
        assert r.stdout == "42\n" and r.error is None and not r.timed_out and r.duration > 0
        assert sb.run("print(x * 2)").stdout == "80\n"


def test_tool_calls_are_proxied_to_the_host(isolation):
    with PythonSandbox(["lookup", "boom", "big"], handler, isolation=isolation) as sb:
        r = sb.run("r = lookup(1, 'a', key=[2])\nprint(r['echo'], r['kw'])")
        assert r.error is None and r.stdout == "[1, 'a'] {'key': [2]}\n"
        assert "bad input" in sb.run("boom()").error
        r = sb.run("print(len(big()))")
        assert r.error is None and int(r.stdout) < 200_000  # size-bounded result


def test_errors_report_type_message_and_line():
    with PythonSandbox(isolation="none") as sb:
        assert sb.run("a = 1\nb = a / 0").error == "ZeroDivisionError: division by zero (line 2)"
        assert sb.run("def f(:\n  pass").error.startswith("SyntaxError")


def test_final_answer_cannot_be_swallowed_by_except_exception():
    with PythonSandbox(isolation="none") as sb:
        r = sb.run("try:\n    final_answer({'a': 1})\nexcept Exception:\n    print('swallowed')")
        assert r.final and r.answer == {"a": 1} and "swallowed" not in r.stdout


def test_host_refuses_undeclared_tools_and_malformed_calls():
    sb = PythonSandbox(["lookup"], handler, isolation="none")
    assert sb._serve_tool_call({"op": "call", "name": "boom", "args": [], "kwargs": {}})["op"] == "raise"
    assert sb._serve_tool_call({"op": "call", "name": "lookup", "args": "x", "kwargs": {}})["op"] == "raise"
    assert sb._serve_tool_call({"op": "call", "name": "lookup", "args": [1], "kwargs": {}}) == {
        "op": "return", "value": {"echo": [1], "kw": {}}}


def test_no_sandbox_available_is_refused_unless_opted_out(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    bwrap_problem.cache_clear()
    monkeypatch.setattr("agentkd.sandbox.isolation.bwrap_problem", lambda: "bubblewrap (bwrap) is not installed")
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap.*isolation='none'"):
        PythonSandbox(isolation="auto")
    with pytest.raises(ValueError, match="isolation must be one of"):
        PythonSandbox(isolation="docker")
    monkeypatch.setenv("AGENTKD_SANDBOX", "none")
    assert SandboxConfig().isolation == "none"
    with PythonSandbox() as sb:
        assert sb.isolation == "none" and sb.run("print(1)").stdout == "1\n"


# --- failures: timeouts and crashes give an error observation and a fresh worker -------------


def test_cpu_spin_times_out_and_the_next_call_gets_a_fresh_worker(isolation):
    with PythonSandbox(isolation=isolation, timeout_s=0.5) as sb:
        sb.run("kept = 1")
        started = time.monotonic()
        r = sb.run("while True: pass")
        assert r.timed_out and r.restarted and time.monotonic() - started < 3
        assert "variables" in r.error and "lost" in r.error
        assert "NameError" in sb.run("print(kept)").error
        still_fine(sb)


def test_sleeping_past_the_timeout(isolation):
    with PythonSandbox(isolation=isolation, timeout_s=0.5) as sb:
        r = sb.run("import time\ntime.sleep(60)")
        assert r.timed_out and r.duration < 3
        still_fine(sb)


def test_worker_crash_gives_error_and_fresh_worker(isolation):
    with PythonSandbox(isolation=isolation) as sb:
        r = sb.run("import os\nos._exit(3)")
        assert r.restarted and "crashed" in r.error
        still_fine(sb)


def test_100_mb_of_stdout_is_truncated(isolation):
    with PythonSandbox(isolation=isolation, max_output_chars=1000, timeout_s=20) as sb:
        r = sb.run("for _ in range(1_000_000):\n    print('y' * 99)")
        assert r.error is None and len(r.stdout) < 1200 and "truncated" in r.stdout
        r = sb.run("import os\nn = os.write(1, b'z' * 10_000_000)")  # the raw fd goes nowhere
        assert r.error is None and r.stdout == ""
        still_fine(sb)


def test_memory_bomb_hits_the_limit(isolation):
    with PythonSandbox(isolation=isolation, memory_mb=512, timeout_s=10) as sb:
        r = sb.run("chunks = []\nwhile True:\n    chunks.append(bytearray(50 << 20))")
        assert r.error and ("MemoryError" in r.error or r.restarted)
        still_fine(sb)


def test_hostile_messages_on_the_channel_cannot_crash_or_hang_the_host(isolation):
    forge = (
        "import os, socket, stat\n"
        "fds = [int(f) for f in os.listdir('/proc/self/fd')]\n"
        "socks = [f for f in fds if stat.S_ISSOCK(os.fstat(f).st_mode)]\n"
        "for f in socks:\n"
        "    os.write(f, PAYLOAD)\n"
    )
    payloads = [
        b'"not an object"\n',
        b"{this is not json\n",
        b"[" * 100_000 + b"\n",
        b"x" * 3_000_000,  # no newline, over the size bound
        b'{"op": "call", "name": "secret_tool", "args": [], "kwargs": {}}\n{"op": "done", "stdout": "forged"}\n',
    ]
    with PythonSandbox(["lookup"], handler, isolation=isolation, timeout_s=5) as sb:
        for payload in payloads:
            r = sb.run(f"PAYLOAD = {payload!r}\n" + forge)
            assert r.error is not None or r.stdout in ("", "forged"), r
            assert r.duration < 5
            still_fine(sb)


# --- isolation (bwrap) ---------------------------------------------------------------------


@needs_bwrap
def test_no_network_to_host_listener_or_dns():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(_accept(listener)))
    thread.start()
    with PythonSandbox(isolation="bwrap", timeout_s=5) as sb:
        r = sb.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)")
        assert r.error and ("Connection refused" in r.error or "unreachable" in r.error.lower())
        r = sb.run("import socket\nsocket.getaddrinfo('pypi.org', 443)")
        assert r.error and "gaierror" in r.error
        r = sb.run("import socket\nprint([name for _, name in socket.if_nameindex()])")
        assert r.stdout == "['lo']\n"  # only a loopback of its own
        still_fine(sb)
    thread.join()
    assert accepted == [None]
    listener.close()


def _accept(listener):
    try:
        conn, _ = listener.accept()
        conn.close()
        return "connected"
    except OSError:
        return None


@needs_bwrap
def test_host_files_are_invisible_and_nothing_outside_tmp_is_writable(tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("host secret")
    with PythonSandbox(isolation="bwrap") as sb:
        r = sb.run(f"print(open({str(canary)!r}).read())")
        assert r.error and "FileNotFoundError" in r.error
        for path in ("/etc/shadow", "/etc/passwd", os.path.expanduser("~/.bash_history")):
            assert sb.run(f"open({path!r}).read()").error
        for target in ("/usr/evil.txt", f"{tmp_path}/evil.txt", "/evil.txt"):
            assert sb.run(f"open({target!r}, 'w').write('x')").error
        assert not (tmp_path / "evil.txt").exists()
        r = sb.run("open('scratch.txt', 'w').write('ok')\nimport os\nprint(os.getcwd(), open('scratch.txt').read())")
        assert r.error is None and r.stdout.startswith("/tmp/") and r.stdout.endswith("ok\n")
        r = sb.run("import subprocess\nprint(subprocess.run(['cat', %r], capture_output=True).returncode)" % str(canary))
        assert r.stdout.strip() != "0"
        still_fine(sb)


@needs_bwrap
def test_host_environment_variables_are_not_visible(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-123")
    with PythonSandbox(isolation="bwrap", tmp_mb=65) as sb:  # a fresh sandbox started after the variable
        r = sb.run("import os\nprint(sorted(os.environ))\nprint(os.environ.get('OPENAI_API_KEY'))")
        assert "OPENAI_API_KEY" not in r.stdout.splitlines()[0] and r.stdout.splitlines()[1] == "None"
        r = sb.run(
            "import glob\nhits = []\n"
            "for f in glob.glob('/proc/*/environ'):\n"
            "    try:\n        hits.append(b'sk-canary' in open(f, 'rb').read())\n"
            "    except OSError:\n        pass\nprint(any(hits))"
        )
        assert r.stdout == "False\n"


@needs_bwrap
def test_proc_shows_no_host_process_and_the_host_cannot_be_signalled():
    host = os.getpid()
    with PythonSandbox(isolation="bwrap") as sb:
        r = sb.run("import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
        pids = eval(r.stdout)
        assert 1 in pids and len(pids) < 10 and host not in pids  # a private pid namespace: only the sandbox
        r = sb.run(f"import os\nos.kill({host}, 9)")
        assert r.error and "ProcessLookupError" in r.error
        r = sb.run(f"import ctypes\nlibc = ctypes.CDLL(None)\nprint(libc.kill({host}, 9), libc.ptrace(16, {host}, 0, 0))")
        assert r.stdout == "-1 -1\n"
        r = sb.run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)")
        still_fine(sb)  # the fork server it killed is restarted
    assert os.getpid() == host


@needs_bwrap
def test_fork_bomb_is_contained():
    with PythonSandbox(isolation="bwrap", timeout_s=2, max_processes=32) as sb:
        if sb.server.process_cap == "none":
            pytest.skip("workers run as uid 0 without a pids cgroup: nothing caps processes")
        r = sb.run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
        assert r.timed_out or r.error
        still_fine(sb)
    with PythonSandbox(isolation="bwrap") as fresh:
        still_fine(fresh)


@needs_bwrap
def test_subprocesses_run_inside_the_sandbox_and_die_with_the_worker():
    with PythonSandbox(isolation="bwrap", timeout_s=5) as sb:
        r = sb.run("import subprocess\np = subprocess.Popen(['sleep', '300'])\nprint(p.pid)")
        assert r.error is None
        sb.close()
        sb.start()
        r = sb.run("import os\nprint([open(f'/proc/{p}/cmdline').read() for p in os.listdir('/proc') if p.isdigit()])")
        assert "sleep" not in r.stdout


def test_trial_runs_in_a_forked_copy_and_leaves_state_untouched(isolation):
    with PythonSandbox(["lookup"], handler, isolation=isolation, timeout_s=1) as sb:
        sb.run("x = 1")
        r = sb.trial("x = 99\nprint(lookup(x)['echo'])\nfinal_answer(x * 2)")
        assert r.stdout == "[99]\n" and r.final and r.answer == 198
        assert sb.run("print(x)").stdout == "1\n"  # the episode's variable is unchanged
        r = sb.trial("while True: pass")
        assert r.timed_out and "timed out" in r.error
        r = sb.trial("import os\nos._exit(4)")
        assert "crashed" in r.error
        assert sb.run("print(x)").stdout == "1\n"  # still the same worker, state intact


@needs_bwrap
def test_read_only_mounts_are_readable_but_not_writable(tmp_path):
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "facts.txt").write_text("shared data")
    with PythonSandbox(isolation="bwrap", read_only=(str(data),)) as sb:
        assert sb.run(f"print(open({str(data / 'facts.txt')!r}).read())").stdout == "shared data\n"
        assert "Read-only file system" in sb.run(f"open({str(data / 'new.txt')!r}, 'w')").error
    assert sorted(p.name for p in data.iterdir()) == ["facts.txt"]


def test_bare_text_expressions_are_shown_as_text_like_a_notebook_cell():
    with PythonSandbox(timeout_s=5) as sb:
        r = sb.run("def search(q):\n    return 'found ' + q\nsearch('a')\nn = len('xy')\nn + 1\nsearch('b')")
        assert r.stdout == "found a\nfound b\n"  # every bare text value; other values only when last
        assert sb.run("n * 10").stdout == "20\n" and sb.run("open('/tmp/x', 'w').write('abc')\nNone").stdout == ""
