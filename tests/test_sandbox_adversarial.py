"""Hostile code against the sandbox's run integrity (issue 11): one episode must not be able to kill,
stop, trace or read another episode's worker or the fork server; process limits must bind on a root
host with or without a writable cgroup tree; a worker's death is reported on its own call with the
cause; a fork server that stops answering is replaced.

Real sandboxes only. Each test uses a configuration of its own (a distinct `tmp_mb`) so that it gets
a fork server of its own and environment switches (AGENTKD_SANDBOX_WORKERS, _NO_CGROUP) take effect.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from agentkd import PythonSandbox
from agentkd.sandbox import host as sandbox_module
from agentkd.sandbox.isolation import bwrap_problem

needs_bwrap = pytest.mark.skipif(bwrap_problem() is not None, reason=f"no working bubblewrap here: {bwrap_problem()}")
ROOT = os.geteuid() == 0

# Everything an episode's code can try against the others: every pid it can see in /proc, the
# fork server (its parent), its process group, and -1 ("every process I may signal"); with SIGSTOP
# and SIGKILL; plus ptrace and reading other processes' memory, environment and working dir. (kill()
# may report success for a group or -1 without reaching anyone, so the effect is checked from the host.)
ATTACK = """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
me = os.getpid()
seen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != me)
for sig in (signal.SIGSTOP, signal.SIGKILL):
    for pid in [p for p in seen + [os.getppid()] if p > 0]:  # 0 would mean "my own group"
        for target in (pid, -pid):
            try:
                os.kill(target, sig)
            except OSError:
                pass
    try:
        if os.getppid() > 0:
            os.killpg(os.getpgid(os.getppid()), sig)
    except OSError:
        pass
traced = [pid for pid in seen if libc.ptrace(16, pid, 0, 0) == 0]  # PTRACE_ATTACH
read = []
for pid in seen:
    for what in ('environ', 'mem', 'cwd'):
        try:
            if what == 'cwd':
                os.listdir(f'/proc/{pid}/cwd')
            else:
                open(f'/proc/{pid}/{what}', 'rb').read(1)
            read.append((pid, what))
        except OSError:
            pass
print(traced, read)
os.kill(-1, signal.SIGSTOP)
os.kill(-1, signal.SIGKILL)
"""


def _visible_host_processes(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except OSError:
            continue
        out += children
        todo += children
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _fork_server_pid(sb: PythonSandbox) -> int:
    """The host pid of the Python fork server inside the sandbox (a descendant of bwrap)."""
    todo = [sb.server._proc.pid]  # type: ignore[union-attr]
    while todo:
        pid = todo.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        if b"worker_main.py" in cmdline and not cmdline.startswith(b"bwrap"):
            return pid
        todo += [int(c) for c in children]
    raise AssertionError("fork server not found")


@pytest.fixture
def strategy(request, monkeypatch):
    monkeypatch.setenv("AGENTKD_SANDBOX_WORKERS", request.param)
    return request.param


@needs_bwrap
@pytest.mark.parametrize("strategy", ["uid", "pidns"] if ROOT else ["pidns"], indirect=True)
def test_one_episode_cannot_kill_stop_trace_or_read_another(strategy):
    victim = PythonSandbox(isolation="bwrap", tmp_mb=71 if strategy == "uid" else 72, timeout_s=5)
    attacker = PythonSandbox(isolation="bwrap", tmp_mb=victim.config.tmp_mb, timeout_s=5)
    with victim, attacker:
        assert victim.server.workers == strategy, "the sandbox fell back to shared workers"
        victim.run("kept = 'still here'")
        r = attacker.run(ATTACK)
        # whatever the attack did to itself, the other episode keeps its variables, unstopped
        started = time.monotonic()
        v = victim.run("print(kept)")
        assert v.stdout == "still here\n" and v.error is None and not v.restarted, v
        assert time.monotonic() - started < 2
        if r.error is None:  # the attacker survived: it traced and read nothing of anyone else's
            assert r.stdout == "[] []\n", r.stdout
        stopped = [pid for pid in _descendants(victim.server._proc.pid) if _state(pid) in ("T", "t")]
        assert stopped == [], "processes of the sandbox were stopped"
        # a new episode starts within seconds
        started = time.monotonic()
        with PythonSandbox(isolation="bwrap", tmp_mb=victim.config.tmp_mb) as fresh:
            assert fresh.run("print(1)").stdout == "1\n"
        assert time.monotonic() - started < 3
        r = attacker.run("print('attacker again')")
        if r.restarted:
            r = attacker.run("print('attacker again')")
        assert r.stdout == "attacker again\n"


@needs_bwrap
def test_workers_run_without_privileges_under_their_own_uid():
    with PythonSandbox(isolation="bwrap", tmp_mb=73) as a, PythonSandbox(isolation="bwrap", tmp_mb=73) as b:
        if a.server.workers != "uid":
            pytest.skip(f"uid strategy not in use here ({a.server.workers})")
        ids = []
        for sb in (a, b):
            r = sb.run("import os\nst = open('/proc/self/status').read()\n"
                       "print(os.getuid(), os.getgid(), [l.split()[1] for l in st.splitlines() if l.startswith('CapEff')][0])")
            uid, gid, caps = r.stdout.split()
            assert int(uid) >= 1 << 30 and int(gid) == int(uid) and int(caps, 16) == 0
            ids.append(int(uid))
        assert ids[0] != ids[1]
        # the other worker's private working dir is closed to it
        r = a.run("import os\nprint(os.getcwd())")
        assert "PermissionError" in b.run(f"import os\nos.listdir({r.stdout.strip()!r})").error


@needs_bwrap
def test_sigstop_of_every_visible_process_does_not_hang_later_episodes():
    with PythonSandbox(isolation="bwrap", tmp_mb=74, timeout_s=5) as victim, \
            PythonSandbox(isolation="bwrap", tmp_mb=74, timeout_s=5) as attacker:
        victim.run("kept = 1")
        r = attacker.run("import os, signal\nfor p in os.listdir('/proc'):\n    if p.isdigit() and int(p) != os.getpid():\n"
                         "        try:\n            os.kill(int(p), signal.SIGSTOP)\n        except OSError:\n            pass")
        assert not r.timed_out
        started = time.monotonic()
        with PythonSandbox(isolation="bwrap", tmp_mb=74) as fresh:
            assert fresh.run("print(2)").stdout == "2\n"
        assert victim.run("print(kept)").stdout == "1\n"
        assert time.monotonic() - started < 3


@needs_bwrap
def test_a_stopped_fork_server_is_replaced_not_waited_on():
    config = {"isolation": "bwrap", "tmp_mb": 75, "start_timeout_s": 1.0}
    with PythonSandbox(**config) as first:
        assert first.run("print(1)").stdout == "1\n"
        server_pid = _fork_server_pid(first)
        os.kill(server_pid, signal.SIGSTOP)  # as if hostile code had frozen it
        restarts = first.server.restarts
        started = time.monotonic()
        with PythonSandbox(**config) as second:
            assert second.run("print(2)").stdout == "2\n"
        assert time.monotonic() - started < 5
        assert first.server.restarts == restarts + 1
        assert not Path(f"/proc/{server_pid}").exists() or b"Z" in Path(f"/proc/{server_pid}/stat").read_bytes()


@needs_bwrap
def test_a_dead_fork_server_is_replaced_and_its_old_pids_mean_nothing_to_the_new_one():
    with PythonSandbox(isolation="bwrap", tmp_mb=76) as first:
        first.run("print(1)")
        os.kill(_fork_server_pid(first), signal.SIGKILL)
        time.sleep(0.1)
        with PythonSandbox(isolation="bwrap", tmp_mb=76) as second:  # a new server, whose pids restart low
            second.run("kept = 2")
            assert second.pid == first.pid  # the same number, in another sandbox
            r = first.run("print(3)")  # its worker went down with the old sandbox: reported on its own call
            assert r.restarted and "crashed" in r.error
            assert second.run("print(kept)").stdout == "2\n"  # first's clean-up did not kill second's worker
        assert first.run("print(3)").stdout == "3\n"


FORK_300 = """
import os, time
n, err = 0, None
for i in range(300):
    try:
        pid = os.fork()
    except OSError as exc:
        err = exc
        break
    if pid == 0:
        os.setsid()  # try to escape the worker's process group as well
        time.sleep(60)
        os._exit(0)
    n += 1
print('forked', n)
raise err
"""


@needs_bwrap
@pytest.mark.parametrize("cgroup", [True, False], ids=["with-cgroup", "without-cgroup"])
def test_300_forks_are_capped_well_below(cgroup, monkeypatch):
    if not cgroup:
        monkeypatch.setenv("AGENTKD_SANDBOX_NO_CGROUP", "1")  # as on a host without a writable cgroup tree
    with PythonSandbox(isolation="bwrap", tmp_mb=80 + cgroup, max_processes=24, timeout_s=10) as sb:
        if not cgroup:
            assert "cgroup" not in sb.server.process_cap
        assert sb.server.process_cap != "none"
        r = sb.run(FORK_300)
        forked = int(r.stdout.split()[1])
        assert forked < 24, r
        assert "max_processes" in r.error and "24" in r.error
        uid = int(sb.run("import os\nprint(os.getuid())").stdout) if sb.server.workers == "uid" else None
        # the episode keeps working, and closing it takes every process it started, even ones that left its session
        assert sb.run("print('ok')").stdout == "ok\n"
    if uid is not None:
        deadline = time.monotonic() + 3
        while _visible_host_processes(uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _visible_host_processes(uid) == []


@needs_bwrap
def test_no_process_cap_is_warned_about_loudly():
    os.environ["AGENTKD_SANDBOX_WORKERS"] = "shared"
    os.environ["AGENTKD_SANDBOX_NO_CGROUP"] = "1"
    try:
        with PythonSandbox(isolation="bwrap", tmp_mb=79) as sb:
            cap = sb.server.process_cap
    finally:
        del os.environ["AGENTKD_SANDBOX_WORKERS"], os.environ["AGENTKD_SANDBOX_NO_CGROUP"]
    if not ROOT:
        assert cap == "rlimit"
        return
    assert cap == "none"
    assert any("NOTHING caps how many processes" in m for m in sandbox_module._WARNED)


@pytest.mark.parametrize("isolation", ["bwrap", "none"] if bwrap_problem() is None else ["none"])
def test_a_crash_is_reported_on_its_own_call_with_the_cause(isolation):
    with PythonSandbox(isolation=isolation, tmp_mb=82) as a, PythonSandbox(isolation=isolation, tmp_mb=82) as b:
        b.run("kept = 7")
        r = a.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert r.restarted and "killed by signal 9 (SIGKILL" in r.error and "lost" in r.error
        r = a.run("import os\nos._exit(5)")
        assert r.restarted and "exited with code 5" in r.error
        assert a.run("print('fresh')").stdout == "fresh\n"
        assert b.run("print(kept)").stdout == "7\n"  # the other episode saw nothing


@needs_bwrap
def test_cpu_limit_names_the_limit():
    with PythonSandbox(isolation="bwrap", tmp_mb=83, cpu_seconds=1, timeout_s=10) as sb:
        r = sb.run("while True: pass")
        assert r.restarted and not r.timed_out and "SIGXCPU" in r.error and "cpu_seconds=1" in r.error
        assert sb.run("print(1)").stdout == "1\n"


@needs_bwrap
def test_the_pids_cgroup_binds_where_it_is_writable(monkeypatch):
    monkeypatch.setenv("AGENTKD_SANDBOX_WORKERS", "shared")  # workers as uid 0: only the cgroup can cap them
    with PythonSandbox(isolation="bwrap", tmp_mb=84, max_processes=4, timeout_s=10) as sb:
        if "cgroup" not in sb.server.process_cap:
            pytest.skip("no writable pids cgroup on this host")
        r = sb.run(FORK_300)
        assert int(r.stdout.split()[1]) <= 4 * 16, r  # the whole sandbox holds at most max_processes * 16
        assert sb.run("print('ok')").stdout == "ok\n"


STEAL = """
import os
found = []
for root, dirs, files in os.walk('/tmp'):
    for name in files:
        try:
            if b'secret-of-a' in open(os.path.join(root, name), 'rb').read():
                found.append(os.path.join(root, name))
        except OSError:
            pass
print(found)
"""


@needs_bwrap
@pytest.mark.parametrize("strategy", ["uid", "pidns"] if ROOT else ["pidns"], indirect=True)
def test_one_episode_cannot_read_another_episodes_files(strategy):
    with PythonSandbox(isolation="bwrap", tmp_mb=85 if strategy == "uid" else 86) as a, \
            PythonSandbox(isolation="bwrap", tmp_mb=85 if strategy == "uid" else 86) as b:
        assert a.server.workers == strategy
        r = a.run("open('notes.txt', 'w').write('secret-of-a')\nimport os\nprint(os.getcwd())")
        assert r.error is None and r.stdout.startswith("/tmp/")
        assert a.run(STEAL).stdout != "[]\n"  # a finds its own file
        assert b.run(STEAL).stdout == "[]\n"  # b, walking all of /tmp, does not
        mine = r.stdout.strip()
    if strategy == "uid":  # a closed worker's files do not stay behind to fill the sandbox's /tmp
        with PythonSandbox(isolation="bwrap", tmp_mb=85) as c:
            deadline = time.monotonic() + 3
            while os.path.basename(mine) in c.run("import os\nprint(os.listdir('/tmp'))").stdout:
                assert time.monotonic() < deadline, "the closed worker's dir was not removed"
                time.sleep(0.05)
