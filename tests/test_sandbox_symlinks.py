"""The sandbox starts when the venv, the interpreter or read-only paths are reached through symlinks; a sandbox
that cannot start says why in bwrap's own words and stops the command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentkd import PythonSandbox, SandboxStartError
from agentkd.sandbox.isolation import bwrap_problem, links_on_the_way

ROOT = Path(__file__).resolve().parents[1]
needs_bwrap = pytest.mark.skipif(bwrap_problem() is not None, reason=f"no working bubblewrap here: {bwrap_problem()}")
needs_venv = pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the tests do not run in a virtualenv")


def linked_venv(tmp_path: Path) -> Path:
    """The test venv's python reached the way a user's checkout is: through a symlink to the folder that holds
    the venv (absolute), itself reached through a second, relative symlink."""
    venv = Path(sys.prefix)
    (tmp_path / "checkout").symlink_to(venv.parent)
    (tmp_path / "via").symlink_to("checkout")
    return tmp_path / "via" / venv.name / "bin" / Path(sys.executable).name


def run_python(python: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run `python` with this checkout first on its path (no AGENTKD_SANDBOX override from the host)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("AGENTKD_SANDBOX", None)
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
                          check=False)


def test_links_on_the_way_are_found_as_the_kernel_follows_them(tmp_path):
    (tmp_path / "real" / "bin").mkdir(parents=True)
    (tmp_path / "real" / "bin" / "python3.11").write_text("")
    (tmp_path / "real" / "bin" / "python").symlink_to("python3.11")
    (tmp_path / "top").symlink_to(tmp_path / "real")
    (tmp_path / "rel").symlink_to("top/bin")
    links = links_on_the_way(tmp_path / "rel" / ".." / "bin" / "python")
    assert links == [(tmp_path / "rel", "top/bin"), (tmp_path / "top", str(tmp_path / "real")),
                     (tmp_path / "real" / "bin" / "python", "python3.11")]
    assert links_on_the_way(tmp_path / "real" / "bin" / "python3.11") == []
    assert links_on_the_way(tmp_path / "top" / "missing" / "x") == [(tmp_path / "top", str(tmp_path / "real"))]


@needs_bwrap
def test_a_symlinked_read_only_path_is_readable_under_its_own_name(tmp_path):
    corpus = tmp_path / "data" / "v2" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "facts.txt").write_text("shared data")
    (tmp_path / "data" / "current").symlink_to("v2")  # relative, as release folders often are
    (tmp_path / "corpus").symlink_to(tmp_path / "data" / "current" / "corpus")  # absolute, through the first
    linked = tmp_path / "corpus"
    with PythonSandbox(isolation="bwrap", read_only=(str(linked),)) as sb:
        r = sb.run(f"print(open({str(linked / 'facts.txt')!r}).read())")
        assert r.error is None and r.stdout == "shared data\n"
        r = sb.run(f"print(open({str(tmp_path / 'data' / 'current' / 'corpus' / 'facts.txt')!r}).read())")
        assert r.error is None and r.stdout == "shared data\n"
        assert "Read-only file system" in sb.run(f"open({str(linked / 'new.txt')!r}, 'w')").error
    assert sorted(p.name for p in corpus.iterdir()) == ["facts.txt"]


@needs_bwrap
@needs_venv
def test_the_worker_starts_through_a_symlinked_venv_and_sees_its_packages(tmp_path):
    python = linked_venv(tmp_path)
    inside = "import json, sys, pydantic\\nprint(json.dumps([sys.executable, sys.prefix, sys.path]))"
    script = ("import json\nfrom agentkd.sandbox.host import PythonSandbox\n"
              "with PythonSandbox(isolation='bwrap') as sb:\n"
              f"    r = sb.run('{inside}')\n"
              "print(json.dumps([r.stdout, r.error]))\n")
    done = run_python(python, "-c", script, timeout=60)
    assert done.returncode == 0, done.stderr
    stdout, error = json.loads(done.stdout.splitlines()[-1])
    assert error is None, error
    executable, prefix, path = json.loads(stdout)
    # inside, Python found the venv next to the path it was started as (pyvenv.cfg), not the resolved one
    assert executable == str(python) and prefix == str(python.parent.parent)
    assert any(p.startswith(prefix) and p.endswith("site-packages") for p in path)


@needs_bwrap
@needs_venv
@pytest.mark.slow
def test_collect_through_a_symlinked_venv_writes_successful_trajectories(tmp_path):
    run = tmp_path / "run"
    done = run_python(linked_venv(tmp_path), "-m", "agentkd.cli", "collect", "--env", "mathcode", "--teacher",
                      "reference", "--n", "2", "--sandbox", "bwrap", "--run", str(run))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (run / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == 2
    assert all(r["status"] == "finished" and r["success"] and r["error"] is None for r in records), records


@needs_bwrap
def test_a_sandbox_that_cannot_start_says_why_in_bwraps_words(monkeypatch):
    missing = str(Path(sys.executable).parent / "no-such-python")
    monkeypatch.setattr(sys, "executable", missing)
    with pytest.raises(SandboxStartError) as caught:  # tmp_mb: a configuration no other test's server has
        PythonSandbox(isolation="bwrap", tmp_mb=97).start()
    message = str(caught.value)
    assert f"bwrap: execvp {missing}: No such file or directory" in message and "exit code" in message
    assert "no details" not in message and "--sandbox none" in message
    assert "execvp" in caught.value.detail


# Runs the CLI as `python -m agentkd.cli ...` would, with an interpreter path that does not exist: bwrap fails
# to exec it, as it did for a venv reached through a symlink.
_MISSING_INTERPRETER = """
import os, runpy, sys
sys.executable = os.path.join(os.path.dirname(sys.executable), "no-such-python")
sys.argv = ["agentkd", *sys.argv[1:]]
runpy.run_module("agentkd.cli", run_name="__main__", alter_sys=True)
"""


@needs_bwrap
@pytest.mark.slow
def test_collect_stops_with_bwraps_words_when_the_sandbox_cannot_start(tmp_path):
    run = tmp_path / "run"
    done = run_python(Path(sys.executable), "-c", _MISSING_INTERPRETER, "collect", "--env", "mathcode",
                      "--teacher", "reference", "--n", "2", "--sandbox", "bwrap", "--run", str(run))
    assert done.returncode != 0
    assert "could not start" in done.stderr and "bwrap: execvp" in done.stderr, done.stderr
    assert "no-such-python: No such file or directory" in done.stderr
    assert "no details" not in done.stderr and "Traceback" not in done.stderr
    trajectories = run / "trajectories.jsonl"
    assert not trajectories.exists() or trajectories.read_text() == ""  # no episode recorded as an error
