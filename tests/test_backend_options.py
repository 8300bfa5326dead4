"""Backend settings and their errors, without starting Ray."""

import sys

import pytest
from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.scale import Backend, RayUnavailableError
from agentkd.scale.ray_cluster import import_ray


def test_without_ray_installed_the_ray_backend_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(RayUnavailableError, match=r"pip install 'agentkd\[ray\]'"):
        import_ray()


def test_a_ray_address_needs_the_ray_backend(tmp_path):
    with pytest.raises(ValueError, match="needs the Ray backend"):
        Backend(address="auto")
    result = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--run",
                                      str(tmp_path / "r"), "--ray-address", "auto"])
    assert result.exit_code == 2 and "--ray-address needs --backend ray" in result.output
    assert not (tmp_path / "r").exists()
    unknown = CliRunner().invoke(app, ["eval", "--run", str(tmp_path / "r"), "--policy", "teacher", "--backend", "k8s"])
    assert unknown.exit_code == 2 and "'k8s' is not one of 'local', 'ray'" in unknown.output
