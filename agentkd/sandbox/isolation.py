"""How the fork server is isolated from the host: bubblewrap, or nothing (explicit opt-out).

bwrap mode guarantees (each checked by tests/test_sandbox.py and tests/test_sandbox_adversarial.py):
- no network: a private network namespace with only a loopback device; no DNS;
- no view of host files: only read-only system paths (/usr, the Python install and
  virtualenv, the worker script) plus paths the environment mounts read-only; /proc shows
  only sandbox processes; /tmp is a private tmpfs per sandbox (size-capped);
- no way to signal or trace the host: private pid, ipc, uts, cgroup (and, for a non-root
  host, user) namespaces; host processes are invisible; capabilities dropped;
- a clean environment: no host variables (API keys) inside;
- episodes isolated from each other: workers of one host process share one sandbox (that is
  what makes starting a worker cost ~1 ms), but each runs under a uid of its own with no
  capabilities ("uid" strategy, root host), or as pid 1 of a pid namespace of its own ("pidns",
  non-root host, where each also sees only its own working dir at /tmp/w): it cannot signal,
  stop, trace or read the memory or files of another episode's worker or of the fork server.
  Each worker has its own session and is not dumpable; closing it kills everything it started
  and removes its working dir;
- limits per worker: address space, CPU seconds, open files, file size, processes
  (RLIMIT_NPROC binds because workers never run as host uid 0: their own uid on a root host,
  the user's uid otherwise; a pids cgroup caps the whole sandbox where the kernel offers a
  writable one), and a wall-clock timeout per call enforced by the host.
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
WORKER_STRATEGIES = ("uid", "pidns", "shared")


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


def worker_strategy(isolation: str) -> str:
    """How workers of one sandbox are kept apart: 'uid' (root host), 'pidns' (non-root host) or 'shared'
    (none mode). AGENTKD_SANDBOX_WORKERS overrides it (for tests and for kernels that refuse one)."""
    forced = os.environ.get("AGENTKD_SANDBOX_WORKERS")
    if forced:
        if forced not in WORKER_STRATEGIES:
            raise ValueError(f"AGENTKD_SANDBOX_WORKERS must be one of {WORKER_STRATEGIES}, got {forced!r}")
        return forced if isolation == "bwrap" else "shared"
    if isolation != "bwrap":
        return "shared"
    if os.geteuid() != 0:
        return "pidns"
    return "shared" if uid_strategy_problem() else "uid"


@lru_cache(maxsize=1)
def bwrap_has_perms() -> bool:
    """Whether this bwrap knows --perms (bubblewrap >= 0.5)."""
    try:
        out = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, check=False).stdout.split()[-1]
        return tuple(int(x) for x in out.split(".")[:2]) >= (0, 5)
    except (OSError, ValueError, IndexError):
        return False


def uid_strategy_problem() -> str | None:
    """Why workers could not run under their own uids here (None when they can): an old bwrap copies the
    host's folder modes, and a folder on the way to Python that others may not enter (a 0700 /root)
    would lock them out."""
    if bwrap_has_perms():
        return None
    for path in _python_paths():
        for folder in [path, *path.parents]:
            if folder != Path("/") and not folder.stat().st_mode & 0o001:
                return (f"bubblewrap older than 0.5 cannot open {folder} (mode {folder.stat().st_mode & 0o777:o}) "
                        "to workers running under their own uids; upgrade bubblewrap or install Python and the "
                        "virtualenv where other users may read them")
    return None


def _python_paths() -> list[Path]:
    """Folders the worker's interpreter needs: its install, the venv, and site-packages."""
    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(os.path.realpath(sys.executable)).parent}
    for entry in sys.path:
        if entry and "site-packages" in entry and Path(entry).is_dir():
            paths.add(Path(entry))
    # keep only outermost folders
    ordered = sorted(p.resolve() for p in paths)
    return [p for i, p in enumerate(ordered) if not any(p.is_relative_to(q) for q in ordered[:i])]


_SANDBOX_OWN = (Path("/proc"), Path("/dev"))
"""Trees bwrap makes itself: a host symlink there cannot be recreated."""
MAX_SYMLINKS = 40  # as the kernel's limit on links followed in one lookup


def links_on_the_way(path: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """Every symlink met while resolving `path` as the kernel does, in order: (where the link is, with no
    symlink in its parent folders; what it points to, as written). A missing part ends the walk."""
    links: list[tuple[Path, str]] = []
    text = os.fspath(path)
    text = text if text.startswith("/") else os.path.join(os.getcwd(), text)  # no normpath: ".." follows links
    todo = [part for part in reversed(text.split("/")) if part]
    current = Path("/")
    while todo:
        part = todo.pop()
        if part == ".":
            continue
        if part == "..":
            current = current.parent
            continue
        candidate = current / part
        try:
            target = os.readlink(candidate)
        except OSError:  # not a link, or missing
            if not candidate.exists():
                break
            current = candidate
            continue
        links.append((candidate, target))
        if len(links) > MAX_SYMLINKS:
            raise SandboxUnavailableError(f"too many levels of symbolic links in {path}; fix the link loop")
        if target.startswith("/"):
            current = Path("/")
        todo += [p for p in reversed(target.split("/")) if p]
    return links


def _paths_used_inside(read_only: list[Path]) -> list[str]:
    """The host paths the sandbox is reached through under their own names: the interpreter that bwrap
    executes (and whose location Python uses to find its venv, pyvenv.cfg), its prefixes, site-packages
    and the read-only paths."""
    used = [sys.executable, sys.prefix, sys.base_prefix, sys.exec_prefix]
    used += [entry for entry in sys.path if entry and "site-packages" in entry and os.path.isdir(entry)]
    return used + [str(p) for p in read_only]


def _links_to_recreate(paths: list[str], present: list[Path]) -> list[tuple[Path, str]]:
    """Symlinks on the way to `paths` that do not already exist inside the sandbox (under a mount in
    `present`), once each: (where, target)."""
    wanted: dict[Path, str] = {}
    for path in paths:
        for link, target in links_on_the_way(path):
            if any(link.is_relative_to(p) for p in [*present, *_SANDBOX_OWN]) or link == Path("/tmp"):
                continue
            wanted.setdefault(link, target)
    return list(wanted.items())


def bwrap_command(read_only: list[Path], tmp_bytes: int, workers: str = "shared") -> list[str]:
    """The bwrap prefix that starts the fork server in fresh namespaces.

    On a root host the sandbox gets no user namespace (one would map only uid 0) and keeps just the
    capabilities the fork server needs to put each worker under a uid of its own (setuid, setgid,
    kill); workers drop them all. Elsewhere bwrap's user namespace maps the user's own uid, and the
    server keeps CAP_SYS_ADMIN inside it to give each worker a pid namespace."""
    root = os.geteuid() == 0
    unshare = (["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
               if root else ["--unshare-all"])
    cmd = ["bwrap", *unshare, "--die-with-parent", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
           "--setenv", "USER", "sandbox", "--setenv", "LOGNAME", "sandbox",
           "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "PYTHONHASHSEED", "0",
           "--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    if root:
        cmd += ["--cap-drop", "ALL"]
        if workers == "uid":
            cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    if workers == "pidns":
        cmd += ["--cap-add", "CAP_SYS_ADMIN"]
    cmd += ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib64", "lib32"):
        path = Path("/") / top
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            cmd += ["--ro-bind", str(path), str(path)]
    for extra in ("/etc/ld.so.cache", "/etc/localtime"):
        cmd += ["--ro-bind-try", extra, extra]
    python = _python_paths()
    given = [*python, *read_only]
    mounts = [Path(p).resolve() for p in given]
    system = [Path("/usr"), Path("/bin"), Path("/sbin"), Path("/lib"), Path("/lib64"), Path("/lib32"), Path("/etc")]
    made: set[Path] = set()
    for index, (asked, path) in enumerate(zip(given, mounts)):
        if not path.exists():
            raise SandboxUnavailableError(
                f"cannot mount {asked} into the sandbox: it does not exist"
                + (f" (it resolves to {path})" if str(asked) != str(path) else "")
                + ("; create it or remove it from read_only" if index >= len(python) else ""))
        # folders leading to a mount are created world-traversable (bwrap would copy the host's modes, and a
        # 0700 /root would lock out workers that run under their own uid)
        for parent in reversed(path.parents) if bwrap_has_perms() else ():
            if parent != Path("/") and parent not in made and not any(parent.is_relative_to(s) for s in system):
                made.add(parent)
                cmd += ["--perms", "0755", "--dir", str(parent)]
        cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--ro-bind", str(WORKER_DIR), SANDBOX_WORKER_DIR]
    # a path reached through symlinks (a venv behind a linked folder, a linked data dir) is used inside under the
    # name the host uses: the links on the way are recreated where the mounts above do not already hold them
    present = [*mounts, *(Path("/") / top for top in ("usr", "bin", "sbin", "lib", "lib64", "lib32"))]
    for link, target in _links_to_recreate(_paths_used_inside(read_only), present):
        for parent in reversed(link.parents):  # world-traversable too (bwrap would make them 0700)
            if parent != Path("/") and parent not in made and not any(parent.is_relative_to(p) for p in present):
                made.add(parent)
                cmd += [*(["--perms", "0755"] if bwrap_has_perms() else []), "--dir", str(parent)]
        cmd += ["--symlink", target, str(link)]
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
    """Best effort: a pids cgroup (v2 or v1) capping how many processes a sandbox may hold.

    AGENTKD_SANDBOX_NO_CGROUP=1 skips it (to check that the per-worker limit binds without one)."""

    def __init__(self, max_pids: int) -> None:
        self.path: Path | None = None
        if os.environ.get("AGENTKD_SANDBOX_NO_CGROUP") == "1":
            return
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
