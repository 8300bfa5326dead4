"""Saving and loading a DemoStore folder: meta.json, records.jsonl, goal.faiss, context.faiss."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentkd.store import faiss_index
from agentkd.store.errors import StoreError, StoreMismatchError
from agentkd.store.keys import KEYS
from agentkd.store.records import StepRecord

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


def write_store(path: str | Path, records: list[StepRecord], indexes: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write a store's records, its FAISS index per key (none when empty) and meta.json to the folder `path`
    (meta.json last, so a complete meta means a complete store)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)

    def write_records(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(record.model_dump_json() + "\n")

    _replace(folder / RECORDS_FILE, write_records)
    for key in KEYS:
        if records:
            _replace(folder / index_file(key), lambda tmp, key=key: faiss_index.write(indexes[key], tmp))
        else:
            (folder / index_file(key)).unlink(missing_ok=True)
    _replace(folder / META_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))


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


def read_store(path: str | Path, embedder_name: str) -> tuple[dict[str, Any], list[StepRecord], dict[str, Any]]:
    """(meta, records, FAISS index per key) of the store in `path`; a StoreError if it is missing or damaged,
    StoreMismatchError if it was built with another embedder than `embedder_name`."""
    folder = Path(path)
    meta = read_meta(folder)
    check_embedder(folder, meta, embedder_name)
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
    except (OSError, ValueError, RuntimeError) as exc:  # faiss raises RuntimeError on a damaged file
        raise damaged(folder, exc) from exc
    return meta, records, indexes


def damaged(folder: Path, exc: BaseException) -> StoreError:
    """The error for a store folder whose files do not fit together."""
    return StoreError(f"the demonstration store at {folder} is damaged ({_first_line(exc)}); {REBUILD}")


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
