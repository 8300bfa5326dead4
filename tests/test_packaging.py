"""agentkd installs as a normal wheel, built-in environments included."""

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    renamed = {folder: name for name, folder in config["package-dir"].items()}
    on_disk = set()
    for top in ("agentkd", "envs"):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            on_disk.add(".".join((renamed.get(parts[0], parts[0]), *parts[1:])))
    assert on_disk == listed, f"missing from pyproject: {on_disk - listed}; listed but absent: {listed - on_disk}"


@pytest.mark.slow
def test_a_wheel_install_collects_with_a_builtin_env_from_outside_the_checkout(tmp_path):
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheels.glob("agentkd-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # Reuse this environment's dependencies (not its agentkd: an editable install's hook is not run from here).
    (site / "reuse_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(python), "-c", "import agentkd, agentkd_envs; print(agentkd.__file__); "
                            "print(agentkd_envs.__file__)"], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(site)) for line in where.stdout.split()), where.stdout

    run = elsewhere / "runs" / "wheel"
    done = subprocess.run([str(venv / "bin" / "agentkd"), "collect", "--env", "factqa", "--teacher", "reference",
                           "--n", "3", "--run", str(run)], capture_output=True, text=True, cwd=elsewhere, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(x) for x in (run / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["success"] for r in records)
    assert json.loads((run / "run.json").read_text())["identity"]["env"] == "agentkd_envs.factqa"
