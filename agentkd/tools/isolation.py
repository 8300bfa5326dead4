"""How the fork server is isolated from the host: bubblewrap, or nothing (explicit opt-out).

bwrap mode guarantees (each checked by tests/test_sandbox.py):
- no network: a private network namespace with only a loopback device; no DNS;
- no view of host files: only read-only system paths (/usr, the Python install and
  virtualenv, the worker script) plus paths the environment mounts read-only; /proc shows
  only sandbox processes; /tmp is a private tmpfs per worker (size-capped);
- no way to signal or trace the host: private pid, ipc, uts, cgroup and (where the
  kernel allows) user namespaces; host processes are invisible; all capabilities dropped;
- a clean environment: no host variables (API keys) inside;
- workers of one host process share one sandbox (that is what makes starting a worker
  cost ~1 ms): each has its own session, a private 0700 working dir under the sandbox's
  /tmp and is not dumpable (no ptrace, no /proc/<pid>/mem), but the workers of one run
  could signal each other. Episodes of one run are one trust domain;
- limits per worker: address space, CPU seconds, open files, file size, processes
  (RLIMIT_NPROC is not enforced for uid 0, so when the host runs as root a pids cgroup
  caps the sandbox's process count where the kernel offers one), and a wall-clock
  timeout per call enforced by the host.
none mode: the same fork server, limits and timeout, with NO isolation. Only when asked for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from functools import lru_cache
from pathlib import Path

from agentkd.errors import SandboxUnavailableError

WORKER_DIR = Path(__file__).resolve().parent
SANDBOX_WORKER_DIR = "/opt/agentkd-worker"
ISOLATIONS = ("auto", "bwrap", "none")


def default_isolation() -> str:
    """AGENTKD_SANDBOX (auto | bwrap | none), default auto."""
    return os.environ.get("AGENTKD_SANDBOX", "auto")


@lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None when bubblewrap is installed and can create namespaces here, else why not."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    probe = subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bwrap cannot create namespaces here ({probe.stderr.strip()[:200]})"
    return None


def resolve_isolation(isolation: str) -> str:
    """'auto' → 'bwrap' when it works here; never falls back to no isolation silently."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
    if isolation == "none":
        return "none"
    problem = bwrap_problem()
    if problem:
        raise SandboxUnavailableError(
            f"no sandbox is available: {problem}. Install bubblewrap (Debian/Ubuntu: apt-get install "
            "bubblewrap; ./setup.sh does it) or, only if you trust the code the model writes, opt out "
            "explicitly with isolation='none' (CLI: --sandbox none, or AGENTKD_SANDBOX=none)"
        )
    return "bwrap"


def _python_paths() -> list[Path]:
    """Folders the worker's interpreter needs: its install, the venv, and site-packages."""
    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(os.path.realpath(sys.executable)).parent}
    for entry in sys.path:
        if entry and "site-packages" in entry and Path(entry).is_dir():
            paths.add(Path(entry))
    # keep only outermost folders
    ordered = sorted(p.resolve() for p in paths)
    return [p for i, p in enumerate(ordered) if not any(p.is_relative_to(q) for q in ordered[:i])]


def bwrap_command(read_only: list[Path], tmp_bytes: int) -> list[str]:
    """The bwrap prefix that starts the fork server in fresh namespaces."""
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
           "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "PYTHONHASHSEED", "0",
           "--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    if os.geteuid() == 0:
        cmd += ["--cap-drop", "ALL"]
    cmd += ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib64", "lib32"):
        path = Path("/") / top
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            cmd += ["--ro-bind", str(path), str(path)]
    for extra in ("/etc/ld.so.cache", "/etc/localtime"):
        cmd += ["--ro-bind-try", extra, extra]
    for path in _python_paths() + [Path(p).resolve() for p in read_only]:
        if not path.exists():
            raise SandboxUnavailableError(f"cannot mount {path} into the sandbox: it does not exist")
        cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--ro-bind", str(WORKER_DIR), SANDBOX_WORKER_DIR]
    cmd += ["--remount-ro", "/"]  # bwrap's root is a tmpfs: only /tmp stays writable
    return cmd


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _sweep_stale(root: Path) -> None:
    """Remove empty cgroups left by agentkd processes that died without cleaning up (kill -9)."""
    for stale in root.glob("agentkd-*-*"):
        owner = stale.name.split("-")[1]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            try:
                stale.rmdir()
            except OSError:
                pass


class PidsCgroup:
    """Best effort: a pids cgroup (v2 or v1) capping how many processes a sandbox may hold."""

    def __init__(self, max_pids: int) -> None:
        self.path: Path | None = None
        for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
            v2_without_pids = (root / "cgroup.subtree_control").exists() and "pids" not in _read(
                root / "cgroup.subtree_control")
            if (root / "cgroup.procs").exists() and os.access(root, os.W_OK) and not v2_without_pids:
                candidate = root / f"agentkd-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                try:
                    candidate.mkdir()
                    (candidate / "pids.max").write_text(str(max_pids))
                except OSError:
                    try:
                        candidate.rmdir()
                    except OSError:
                        pass
                    continue
                self.path = candidate
                _sweep_stale(root)
                return

    def add(self, pid: int) -> bool:
        if self.path is None:
            return False
        try:
            (self.path / "cgroup.procs").write_text(str(pid))
            return True
        except OSError:
            return False

    def remove(self) -> None:
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass
