"""A crash-safe, resumable run folder: run.json + append-only trajectories.jsonl."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from agentkd.errors import RunFolderError
from agentkd.records import Trajectory

RUN_FILE = "run.json"
TRAJECTORIES_FILE = "trajectories.jsonl"


class RunFolder:
    """`runs/<name>/`. Each trajectory is one line written with a single write and flushed."""

    def __init__(self, path: str | Path, trajectories_name: str = TRAJECTORIES_FILE, config_name: str = RUN_FILE) -> None:
        self.path = Path(path)
        self.trajectories_path = self.path / trajectories_name
        self.config_path = self.path / config_name
        self._handle: Any = None

    # run.json ---------------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        file = self.config_path
        if not file.is_file():
            return None
        try:
            return json.loads(file.read_text())
        except ValueError as exc:
            raise RunFolderError(f"{file} is not valid JSON ({exc}); fix or delete it") from exc

    def start(self, identity: dict[str, Any], details: dict[str, Any]) -> None:
        """Create the folder or check that it belongs to the same job (same `identity`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        existing = self.read_config()
        if existing is not None:
            before = existing.get("identity", {})
            changed = {k: (before.get(k), v) for k, v in identity.items() if before.get(k) != v}
            if changed:
                lines = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
                raise RunFolderError(
                    f"{self.path} holds a different job ({lines}); resume it with the same settings "
                    "or pass another --run folder"
                )
            existing.setdefault("resumed_at", []).append(_now())
            existing["details"] = details
            record = existing
        else:
            record = {"identity": identity, "details": details, "created_at": _now()}
        tmp = self.config_path.with_name(self.config_path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str))
        os.replace(tmp, self.config_path)

    def identity(self) -> dict[str, Any]:
        """The job recorded in run.json (env, teacher, split...); a clear error if there is none."""
        config = self.read_config()
        if config is None:
            raise RunFolderError(f"{self.path} is not a run folder (no {self.config_path.name}); run `agentkd collect` first")
        return dict(config.get("identity", {}))

    # trajectories -----------------------------------------------------------------
    def repair(self) -> int:
        """Cut a torn last line (kept aside in trajectories.torn). Returns the bytes removed."""
        file = self.trajectories_path
        if not file.is_file() or file.stat().st_size == 0:
            return 0
        with open(file, "rb+") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 1))
            if handle.read(1) == b"\n":
                return 0
            data_tail_start = _last_newline(handle, size) + 1
            handle.seek(data_tail_start)
            torn = handle.read()
            with open(file.with_suffix(".torn"), "ab") as aside:
                aside.write(torn + b"\n")
            handle.truncate(data_tail_start)
            return len(torn)

    def iter_trajectories(self) -> Iterator[Trajectory]:
        """Every complete trajectory in the file (call `repair` first when resuming)."""
        if not self.trajectories_path.is_file():
            return
        with open(self.trajectories_path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.endswith("\n"):
                    return  # torn tail of a crashed writer
                if not line.strip():
                    continue
                try:
                    yield Trajectory.model_validate_json(line)
                except ValidationError as exc:
                    raise RunFolderError(
                        f"{self.trajectories_path}:{lineno} is not a valid trajectory ({exc.error_count()} errors); "
                        "remove that line to continue"
                    ) from exc

    def finished_keys(self) -> set[tuple[str, int]]:
        """(task id, sample index) of every recorded episode."""
        return {t.key for t in self.iter_trajectories()}

    def append(self, trajectory: Trajectory) -> None:
        """Append one trajectory as one line, flushed to the OS before returning."""
        if self._handle is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.trajectories_path, "a", encoding="utf-8")
        self._handle.write(trajectory.model_dump_json() + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _last_newline(handle: Any, size: int) -> int:
    """Offset of the last b"\\n" in the file, or -1."""
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        chunk = handle.read(end - start)
        idx = chunk.rfind(b"\n")
        if idx >= 0:
            return start + idx
        end = start
    return -1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
