"""How llama.cpp (llama-cpp-python) is built for this CPU, and a guard against the build that crashes.

llama.cpp compiled natively on a CPU with AMX (Intel Sapphire Rapids and later) includes its AMX backend, and
that backend segfaults in the first decode of the Qwen2.5-Coder GGUFs (llama.cpp issue 20824). agentkd's
build keeps every native instruction set and leaves out AMX only: the compiler's `-mno-amx-*` switches win over
`-march=native` whatever their order, so the AMX code (compiled only under `__AMX_INT8__`) is left out.

`./setup.sh` builds llama-cpp-python this way (`python -m agentkd.models.llama.build env` prints the
variables). A llama-cpp-python installed by plain pip on an AMX host still has the backend: before such a build
loads a model, `check_model_runs` decodes one token in a child process, caches the verdict per build and model,
and stops with `LlamaBuildError` (naming the model, the cause and the rebuild command) when the child crashed.

This module imports only the standard library at load time, so ./setup.sh can run it before agentkd's
dependencies are installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from agentkd.errors import ModelError

NO_AMX_FLAGS: tuple[str, ...] = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")
"""Compiler switches that leave llama.cpp's AMX backend out of a native build."""

PACKAGE = "llama-cpp-python"
PROBE_TIMEOUT_S = 300.0
_AMX_INFO = re.compile(r"AMX_INT8\s*=\s*1")

# One decode of a few prompt tokens: the call that segfaults under the AMX backend.
_PROBE_CODE = """
import sys
from llama_cpp import Llama
llama = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, n_threads_batch=1, verbose=False)
llama.eval(llama.tokenize(b"def add(a, b):\\n    return a + b"))
"""


class LlamaBuildError(ModelError):
    """The installed llama.cpp build cannot run a model on this CPU (it crashes); rebuild it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=True)


def _compiler_accepts(flags: tuple[str, ...]) -> bool:
    """Whether the C compiler knows the switches (compilers too old to know AMX cannot emit it either)."""
    compiler = os.environ.get("CC", "cc")
    try:
        check = subprocess.run([compiler, *flags, "-E", "-x", "c", os.devnull], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return True  # no compiler to ask: pass the switches and let the build say what is missing
    return check.returncode == 0


def build_env() -> dict[str, str]:
    """Environment variables under which `pip install llama-cpp-python` compiles natively without AMX."""
    env = {"CMAKE_ARGS": " ".join(filter(None, [os.environ.get("CMAKE_ARGS", ""), "-DGGML_NATIVE=ON"]))}
    if _compiler_accepts(NO_AMX_FLAGS):
        for variable in ("CFLAGS", "CXXFLAGS"):
            env[variable] = " ".join(filter(None, [os.environ.get(variable, ""), *NO_AMX_FLAGS]))
    return env


def installed_version() -> str | None:
    """The installed llama-cpp-python version, or None."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def rebuild_command(version: str | None = None) -> str:
    """The one shell command that reinstalls llama-cpp-python compiled natively without the AMX backend."""
    version = version or installed_version()
    requirement = f"{PACKAGE}=={version}" if version else PACKAGE
    variables = " ".join(f"{key}={shlex.quote(value)}" for key, value in build_env().items())
    return (f"{variables} {shlex.quote(sys.executable)} -m pip install --force-reinstall --no-deps --no-cache-dir "
            f"{shlex.quote(requirement)}")


def system_info() -> str:
    """llama.cpp's system info line for the installed build (e.g. '... AVX512 = 1 | AMX_INT8 = 0 | ...')."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    return info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)


def has_amx_backend(info: str) -> bool:
    """Whether a system info line shows a build compiled with AMX (AMX_INT8 = 1)."""
    return bool(_AMX_INFO.search(info))


@dataclass(frozen=True)
class ProbeVerdict:
    """What one decode of a model in a child process did."""

    runs: bool
    detail: str


def _build_identity() -> str:
    """The installed llama.cpp build: package version and the shared library's size and modification time."""
    import llama_cpp

    folder = Path(llama_cpp.__file__).parent
    libraries = sorted(p for p in folder.rglob("*") if p.suffix in (".so", ".dylib", ".dll"))
    parts = [installed_version() or "?"] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in libraries]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _model_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def verdicts_file() -> Path:
    """Where probe verdicts are cached: <agentkd cache>/llama-probe.json (AGENTKD_CACHE, default ~/.cache/agentkd)."""
    root = Path(os.environ.get("AGENTKD_CACHE", Path.home() / ".cache" / "agentkd"))
    return root / "llama-probe.json"


def _read_verdicts() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(verdicts_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_verdict(key: str, verdict: ProbeVerdict) -> None:
    verdicts = _read_verdicts()
    verdicts[key] = {"runs": verdict.runs, "detail": verdict.detail}
    target = verdicts_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(verdicts, indent=1))
        scratch.replace(target)
    except OSError:
        pass  # an unwritable cache only means probing again next time


def probe(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> ProbeVerdict:
    """Load `path` and decode once in a child process; a crash there (a signal) is the verdict 'does not run'.

    A child that fails with a Python error (a corrupt file, too little memory) counts as running: the load in
    this process then raises that error with its own message."""
    try:
        child = subprocess.run([sys.executable, "-c", _PROBE_CODE, str(path)], capture_output=True, text=True,
                               timeout=timeout_s, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return ProbeVerdict(True, f"no verdict: the probe took over {timeout_s:.0f} s")
    code = child.returncode
    if code < 0 or code in (128 + signal.SIGSEGV, 128 + signal.SIGILL, 128 + signal.SIGBUS):
        number = -code if code < 0 else code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return ProbeVerdict(False, f"the first decode was killed by {name}")
    return ProbeVerdict(True, "decoded" if code == 0 else f"exited {code}: {child.stderr.strip()[-300:]}")


def check_model_runs(path: Path, info: str | None = None) -> None:
    """Stop with LlamaBuildError when the installed llama.cpp build crashes on `path` on this CPU.

    Builds without the AMX backend (every build ./setup.sh makes, and any build on a CPU without AMX) return at
    once. Otherwise one probe per (build, model) decides; its verdict is cached in `verdicts_file()`."""
    info = system_info() if info is None else info
    if not has_amx_backend(info):
        return
    key = f"{_build_identity()}|{_model_identity(path)}"
    cached = _read_verdicts().get(key)
    if cached is not None:
        verdict = ProbeVerdict(bool(cached.get("runs")), str(cached.get("detail", "")))
    else:
        verdict = probe(path)
        _write_verdict(key, verdict)
    if not verdict.runs:
        raise LlamaBuildError(
            f"llama.cpp cannot run {path.name} on this CPU: {verdict.detail}. The installed llama-cpp-python was "
            "compiled with its AMX backend (llama_print_system_info shows AMX_INT8 = 1), which crashes on this "
            f"model (llama.cpp issue 20824). Rebuild it without AMX: {rebuild_command()}")


def pinned_requirement(pyproject: Path) -> str:
    """The llama-cpp-python requirement of a pyproject.toml (e.g. 'llama-cpp-python[server]==0.3.36')."""
    import tomllib

    for requirement in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        if re.match(rf"{PACKAGE}\b", requirement):
            return requirement
    return PACKAGE


def needs_build(requirement: str) -> bool:
    """True when llama-cpp-python is missing, at another version than `requirement` pins, or built with AMX."""
    version = installed_version()
    pinned = re.search(r"==\s*([\w.]+)", requirement)
    if version is None or (pinned and version != pinned.group(1)):
        return True
    try:
        return has_amx_backend(system_info())
    except ImportError:
        return True


def build(requirement: str) -> None:
    """pip-install `requirement` compiled natively without AMX, never from pip's wheel cache (its dependencies
    come with the package's own install)."""
    name = re.sub(r"\[[^\]]*\]", "", requirement)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps",
                    "--no-cache-dir", name], env={**os.environ, **build_env()}, check=True)


def _main(argv: list[str]) -> int:
    """`python -m agentkd.models.llama.build ensure [PYPROJECT] | env | rebuild-command` (./setup.sh runs ensure)."""
    command = argv[0] if argv else ""
    if command == "ensure":
        pyproject = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[3] / "pyproject.toml"
        requirement = pinned_requirement(pyproject)
        if not needs_build(requirement):
            return 0
        print(f"compiling {requirement} for this CPU without llama.cpp's AMX backend (a few minutes)...", flush=True)
        try:
            build(requirement)
        except subprocess.CalledProcessError as exc:
            print(f"error: building {requirement} failed (exit {exc.returncode}); see pip's output above",
                  file=sys.stderr)
            return 1
        return 0
    if command == "env":
        print(" ".join(f"{key}={shlex.quote(value)}" for key, value in build_env().items()))
        return 0
    if command == "rebuild-command":
        print(rebuild_command())
        return 0
    print("usage: python -m agentkd.models.llama.build ensure [PYPROJECT] | env | rebuild-command", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
