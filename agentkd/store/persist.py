"""Saving and loading a DemoStore folder: meta.json, records.jsonl, goal.faiss, context.faiss."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agentkd.models.embeddings import Embedder
from agentkd.store import faiss_index
from agentkd.store.errors import StoreError, StoreMismatchError
from agentkd.store.records import StepRecord

if TYPE_CHECKING:
    from agentkd.store.demo_store import DemoStore

META_FILE = "meta.json"
RECORDS_FILE = "records.jsonl"
FORMAT = 1
REBUILD = "rebuild it with `agentkd index --rebuild`"


def index_file(key: str) -> str:
    return f"{key}.faiss"


def _replace(path: Path, write: Any) -> None:
    """Write through a temporary file then rename, so a crash never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_store(store: DemoStore, path: str | Path) -> None:
    """Write `store` to the folder `path` (meta.json last, so a complete meta means a complete store)."""
    from agentkd.store.demo_store import KEYS

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)

    def write_records(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in store.records:
                handle.write(record.model_dump_json() + "\n")

    _replace(folder / RECORDS_FILE, write_records)
    for key in KEYS:
        if store.records:
            _replace(folder / index_file(key), lambda tmp, key=key: faiss_index.write(store._keys[key].index, tmp))
        else:
            (folder / index_file(key)).unlink(missing_ok=True)
    _replace(folder / META_FILE, lambda tmp: tmp.write_text(json.dumps(store.meta, indent=2) + "\n"))


def read_meta(folder: Path) -> dict[str, Any]:
    """meta.json of a store folder, or a StoreError saying what is wrong."""
    file = folder / META_FILE
    if not file.is_file():
        what = "does not exist" if not folder.exists() else f"has no {META_FILE}"
        raise StoreError(f"no demonstration store at {folder} (the folder {what}); build one with `agentkd index`")
    try:
        meta = json.loads(file.read_text())
        missing = [k for k in ("embedder", "count", "index") if k not in meta]
    except (ValueError, TypeError) as exc:
        raise StoreError(f"{file} is not valid JSON ({exc}); {REBUILD}") from exc
    if missing:
        raise StoreError(f"{file} lacks {', '.join(missing)}; {REBUILD}")
    if int(meta.get("format", FORMAT)) > FORMAT:
        raise StoreError(f"{folder} was written by a newer agentkd ({meta.get('agentkd')}); upgrade agentkd or {REBUILD}")
    return meta


def check_embedder(folder: Path, meta: dict[str, Any], name: str) -> None:
    """Raise StoreMismatchError unless the store was built with the embedder called `name`."""
    if meta["embedder"] != name:
        raise StoreMismatchError(
            f"the demonstration store at {folder} was built with the embedder {meta['embedder']!r} but is being "
            f"opened with {name!r}; open it with {meta['embedder']!r} or rebuild it for {name!r} with "
            f"`agentkd index --rebuild` (pass --embedder for a litellm model)"
        )


def load_store(cls: type[DemoStore], path: str | Path, embedder: Embedder | None) -> DemoStore:
    """Read the store in `path`; a StoreError if it is missing or damaged."""
    from agentkd.store.demo_store import DEFAULT_EMBEDDER_NAME, KEYS

    folder = Path(path)
    meta = read_meta(folder)
    check_embedder(folder, meta, embedder.name if embedder is not None else DEFAULT_EMBEDDER_NAME)
    store = cls(embedder, hnsw_threshold=int(meta.get("hnsw_threshold", 20_000)), window=int(meta.get("window", 1)),
                only_successful=bool(meta.get("only_successful", True)), mask_names=bool(meta.get("mask_names", True)))
    try:
        records = _read_records(folder / RECORDS_FILE)
        if len(records) != int(meta["count"]):
            raise ValueError(f"{RECORDS_FILE} holds {len(records)} records but {META_FILE} says {meta['count']}")
        indexes = {}
        if records:
            for key in KEYS:
                file = folder / index_file(key)
                if not file.is_file():
                    raise ValueError(f"{file.name} is missing")
                indexes[key] = faiss_index.read(file)
        store._restore(records, indexes)
    except StoreError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:  # faiss raises RuntimeError on a damaged file
        raise StoreError(f"the demonstration store at {folder} is damaged ({_first_line(exc)}); {REBUILD}") from exc
    if store.dim is not None and meta.get("dimension") not in (None, store.dim):
        raise StoreError(f"{folder}: meta.json says {meta['dimension']} dimensions, the indexes hold {store.dim}; {REBUILD}")
    return store


def _read_records(file: Path) -> list[StepRecord]:
    if not file.is_file():
        raise ValueError(f"{file.name} is missing")
    records = []
    with open(file, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(StepRecord.model_validate_json(line))
            except ValidationError as exc:
                raise ValueError(f"{file.name}:{lineno} is not a valid record ({exc.error_count()} errors)") from exc
    return records


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
