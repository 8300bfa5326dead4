"""The llama.cpp build without AMX, and the guard that stops (instead of segfaulting) on a build with it.

The AMX decision is tested with scripted system-info strings and a scripted crashing probe: a real AMX host is
not needed for the decision. The real probe and the installed build are checked on this host."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from agentkd.models.llama import build as llama_build
from agentkd.models.llama.build import LlamaBuildError, ProbeVerdict

ROOT = Path(__file__).resolve().parents[1]
AMX_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
            "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 |")
PLAIN_INFO = AMX_INFO.replace("AMX_INT8 = 1 | ", "")
SEGFAULT = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTKD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF scripted")
    return path


def test_system_info_decides_whether_the_build_has_amx():
    assert llama_build.has_amx_backend(AMX_INFO)
    assert not llama_build.has_amx_backend(PLAIN_INFO)
    assert not llama_build.has_amx_backend(AMX_INFO.replace("AMX_INT8 = 1", "AMX_INT8 = 0"))


def test_a_build_without_amx_is_never_probed(model_file, cache, monkeypatch):
    def no_probe(*_args, **_kwargs):
        raise AssertionError("a build without AMX must not be probed")

    monkeypatch.setattr(llama_build, "probe", no_probe)
    llama_build.check_model_runs(model_file, info=PLAIN_INFO)
    assert not llama_build.verdicts_file().exists()


def test_a_crashing_amx_build_stops_with_the_model_cause_and_rebuild_command(model_file, cache, monkeypatch):
    monkeypatch.setattr(llama_build, "_PROBE_CODE", SEGFAULT)
    with pytest.raises(LlamaBuildError) as raised:
        llama_build.check_model_runs(model_file, info=AMX_INFO)
    message = str(raised.value)
    assert "model.gguf" in message and "SIGSEGV" in message and "AMX_INT8 = 1" in message
    assert "-mno-amx-int8" in message and "--no-cache-dir" in message and "--force-reinstall" in message
    assert raised.value.fatal

    # The verdict is cached per build and model: the second load decides without a child process.
    monkeypatch.setattr(llama_build, "probe", lambda *_a, **_k: ProbeVerdict(True, "must not be asked"))
    with pytest.raises(LlamaBuildError):
        llama_build.check_model_runs(model_file, info=AMX_INFO)
    # Another model file is probed afresh.
    other = model_file.with_name("other.gguf")
    other.write_bytes(b"GGUF other")
    llama_build.check_model_runs(other, info=AMX_INFO)


def test_a_python_error_in_the_probe_is_not_blamed_on_amx(model_file, cache, monkeypatch):
    monkeypatch.setattr(llama_build, "_PROBE_CODE", "raise SystemExit('cannot read the file')")
    verdict = llama_build.probe(model_file)
    assert verdict.runs and "cannot read the file" in verdict.detail
    llama_build.check_model_runs(model_file, info=AMX_INFO)


def test_the_door_and_the_server_refuse_a_crashing_build(model_file, cache, monkeypatch):
    from agentkd.models.llama import server as serve
    from agentkd.models.llama.door import LlamaDoor

    monkeypatch.setattr(llama_build, "system_info", lambda: AMX_INFO)
    monkeypatch.setattr(llama_build, "_PROBE_CODE", SEGFAULT)
    with pytest.raises(LlamaBuildError, match="model.gguf"):
        LlamaDoor(model_file)
    with pytest.raises(LlamaBuildError, match="Rebuild it without AMX"):
        serve.server_command(str(model_file), 8080)


def test_the_real_probe_decodes_a_packaged_model(cache):
    from agentkd.models.distribution.catalog import resolve_gguf

    try:
        path = resolve_gguf("smollm2-135m")
    except Exception as exc:  # noqa: BLE001 - the packaged model is part of the install
        pytest.skip(f"packaged SmolLM2 GGUF not available: {exc}")
    assert llama_build.probe(path) == ProbeVerdict(True, "decoded")
    llama_build.check_model_runs(path, info=AMX_INFO)  # scripted AMX build: probes for real, then passes
    assert "true" in llama_build.verdicts_file().read_text()


def test_the_installed_build_has_no_amx_backend():
    pytest.importorskip("llama_cpp")
    info = llama_build.system_info()
    assert "AVX" in info or "NEON" in info, info
    assert not llama_build.has_amx_backend(info), f"llama-cpp-python was built with AMX: {info}"


def test_the_build_flags_remove_amx_from_a_native_amx_target():
    """-mno-amx-* win over -march whatever their order, as in llama.cpp's native build (flags first, -march
    after)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    flags = shlex.split(llama_build.build_env().get("CFLAGS", ""))
    if not flags:
        pytest.skip("this compiler knows no AMX switches (and cannot emit AMX)")

    def macros(*args: str) -> str:
        done = subprocess.run([compiler, *args, "-dM", "-E", "-x", "c", "/dev/null"], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"{compiler} does not know -march=sapphirerapids: {done.stderr.strip()[:200]}")
        return done.stdout

    assert "__AMX_INT8__" in macros("-march=sapphirerapids")
    built = macros(*flags, "-march=sapphirerapids")
    assert "__AMX_INT8__" not in built and "__AMX_TILE__" not in built
    assert "__AVX512VNNI__" in built  # everything else native stays


def test_setup_builds_the_pinned_version(monkeypatch):
    requirement = llama_build.pinned_requirement(ROOT / "pyproject.toml")
    assert requirement.startswith("llama-cpp-python") and "==" in requirement
    version = requirement.split("==")[1]
    monkeypatch.setattr(llama_build, "installed_version", lambda: None)
    assert llama_build.needs_build(requirement)
    monkeypatch.setattr(llama_build, "installed_version", lambda: "0.0.1")
    assert llama_build.needs_build(requirement)
    monkeypatch.setattr(llama_build, "installed_version", lambda: version)
    monkeypatch.setattr(llama_build, "system_info", lambda: AMX_INFO)
    assert llama_build.needs_build(requirement)
    monkeypatch.setattr(llama_build, "system_info", lambda: PLAIN_INFO)
    assert not llama_build.needs_build(requirement)
    assert "ensure pyproject.toml" in (ROOT / "setup.sh").read_text()


def test_models_build_shows_the_build_and_the_rebuild_command():
    import sys

    pytest.importorskip("llama_cpp")
    shown = subprocess.run([sys.executable, "-m", "agentkd.cli", "models", "build"], capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    said = shown.stdout + shown.stderr
    assert "llama-cpp-python" in said and "no AMX backend" in said
    assert "-mno-amx-int8" in said and "--no-cache-dir" in said
