"""A crash-safe, resumable run folder: run.json + append-only trajectories.jsonl."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from agentkd.errors import RunFolderError
from agentkd.records import Trajectory
from agentkd.run.layout import RunLayout, check_run_path
from agentkd.specs import EnvSpec, PolicySpec


class RunFolder:
    """An append-only trajectory file and the JSON record of the job that writes it.

    `RunFolder("runs/x")` is a run's `trajectories.jsonl` + `run.json`; an evaluation passes its own
    files (`RunLayout.eval_trajectories` / `eval_settings`). Each trajectory is one line written with
    a single write and flushed.
    """

    def __init__(self, path: str | Path, *, trajectories: Path | None = None, config: Path | None = None) -> None:
        self.path = Path(path)
        self.layout = RunLayout(self.path)
        self.trajectories_path = trajectories or self.layout.trajectories
        self.config_path = config or self.layout.config
        self._handle: Any = None
        self._lock: Any = None
        self._created: list[Path] = []
        """What `start` created (folders, then the record), removed by `discard_if_unused`."""

    # run.json ---------------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        file = self.config_path
        if not file.is_file():
            return None
        try:
            return json.loads(file.read_text())
        except ValueError as exc:
            raise RunFolderError(f"{file} is not valid JSON ({exc}); fix or delete it") from exc

    def check(self, identity: dict[str, Any]) -> None:
        """Refuse (RunFolderError) when the folder already holds a job whose recorded identity differs
        from `identity` in any of its keys, or when the path cannot be a folder. Cheap: call it before loading
        anything slow."""
        check_run_path(self.path)
        existing = self.read_config()
        if existing is None:
            return
        before = existing.get("identity", {})
        changed = {k: (before.get(k), v) for k, v in identity.items() if before.get(k) != v}
        if changed:
            lines = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            where = self.path if self.config_path == self.layout.config else self.config_path
            hint = (f"; it holds no trajectory yet, so deleting {self.config_path} starts it afresh with these settings"
                    if self._holds_only_record() else "")
            raise RunFolderError(
                f"{where} holds a different job ({lines}); resume it with the same settings "
                f"or pass another --run folder{hint}"
            )

    def _holds_only_record(self) -> bool:
        """True when the job recorded here wrote no trajectory and its folder holds nothing else."""
        if self._has_trajectories():
            return False
        if self.config_path != self.layout.config:
            return True
        ours = {self.config_path.name, self.trajectories_path.name, self.lock_path.name}
        return all(p.name in ours for p in self.path.iterdir())

    def _has_trajectories(self) -> bool:
        """Whether the trajectory file holds anything (a complete or a torn line)."""
        file = self.trajectories_path
        return file.is_file() and file.stat().st_size > 0

    def amend_identity(self, update: dict[str, Any]) -> None:
        """Rewrite keys of the recorded identity (upgrading a record written by an older agentkd)."""
        record = self.read_config()
        if record is None:
            return
        record["identity"] = {**record.get("identity", {}), **update}
        self._write_config(record)

    def start(self, identity: dict[str, Any], details: dict[str, Any], specs: dict[str, Any] | None = None) -> None:
        """Create the record or check that it belongs to the same job (same `identity`), then write
        `details` and `specs` (pydantic specs are stored as data) for this session.

        Takes the folder's writer lock (held until `close`): a second process writing the same trajectories at
        once is refused with RunFolderError instead of interleaving its episodes with ours."""
        self.check(identity)
        created = self._missing_folders(self.config_path.parent) + self._missing_folders(self.lock_path.parent)
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.acquire()
        existing = self.read_config()
        self._created = list(dict.fromkeys(created)) + ([self.config_path] if existing is None else [])
        if existing is not None:
            existing.setdefault("resumed_at", []).append(_now())
            existing["identity"] = {**existing.get("identity", {}), **identity}
            existing["details"] = details
            record = existing
        else:
            record = {"identity": identity, "details": details, "created_at": _now()}
        if specs:
            record["specs"] = {k: v.model_dump(mode="json") if hasattr(v, "model_dump") else v for k, v in specs.items()}
        self._write_config(record)

    @staticmethod
    def _missing_folders(folder: Path) -> list[Path]:
        """`folder` and the folders above it that do not exist yet, outermost first."""
        missing = []
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        return missing[::-1]

    def discard_if_unused(self) -> bool:
        """After a job that stopped before writing a single trajectory: remove the record `start` created (and
        the folders it made, when empty), so that the folder is not tied to a job that never ran an episode and
        a retry may use other settings. A record that existed before, or any trajectory, is kept. Returns
        whether anything was removed. Call it after `close`."""
        if self.config_path not in self._created or self._has_trajectories():
            return False
        self.config_path.unlink(missing_ok=True)
        for file in (self.trajectories_path, self.lock_path):
            if file.parent in self._created:  # a folder made for this job: its empty files go with it
                file.unlink(missing_ok=True)
        for folder in reversed([p for p in self._created if p != self.config_path]):
            try:
                folder.rmdir()
            except OSError:  # not empty: something else lives there
                break
        self._created = []
        return True

    def _write_config(self, record: dict[str, Any]) -> None:
        tmp = self.config_path.with_name(self.config_path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str))
        os.replace(tmp, self.config_path)

    def identity(self) -> dict[str, Any]:
        """The job recorded in run.json (env, teacher, split...); a clear error if there is none."""
        config = self.read_config()
        if config is None:
            raise RunFolderError(f"{self.path} is not a run folder (no {self.config_path.name}); run `agentkd collect` first")
        return dict(config.get("identity", {}))

    def records_environment(self) -> bool:
        """Whether the run was collected on an environment (a gateway run records an agent's own tools instead)."""
        record = self.read_config() or {}
        return bool(record.get("specs", {}).get("env")) or "env" in record.get("identity", {})

    def env_spec(self) -> EnvSpec:
        """The environment this run was collected on (runs of agentkd 0.1 recorded only the spec as typed)."""
        identity = self.identity()
        recorded = (self.read_config() or {}).get("specs", {}).get("env")
        if recorded:
            return EnvSpec.model_validate(recorded)
        if "env" not in identity:
            raise RunFolderError(f"{self.config_path} records no environment; collect into a new run folder")
        return EnvSpec(target=identity["env"], given=identity["env"])

    def teacher_spec(self) -> PolicySpec | None:
        """The teacher this run was collected with, as recorded (None for runs of agentkd 0.1: use `identity()`)."""
        recorded = (self.read_config() or {}).get("specs", {}).get("teacher")
        return PolicySpec.model_validate(recorded) if recorded else None

    @property
    def lock_path(self) -> Path:
        """The writer lock beside the trajectories (`<name>.lock`, holding the writer's pid)."""
        return self.trajectories_path.with_name(self.trajectories_path.name + ".lock")

    def acquire(self) -> None:
        """Take the writer lock (idempotent); RunFolderError naming the holder when another process has it."""
        if self._lock is not None:
            return
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunFolderError(
                f"another process (pid {holder}) is writing {self.trajectories_path} now; wait for it to finish "
                "or stop it, then re-run: the episodes it wrote are kept and resumed") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    # trajectories -----------------------------------------------------------------
    @property
    def torn_path(self) -> Path:
        """Where a torn last line is kept aside when the file is repaired."""
        return self.trajectories_path.with_suffix(".torn")

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
            with open(self.torn_path, "ab") as aside:
                aside.write(torn + b"\n")
            handle.truncate(data_tail_start)
            return len(torn)

    def iter_trajectories(self) -> Iterator[Trajectory]:
        """Every complete trajectory in the file (call `repair` first when resuming), read one line at a time, in
        the order first written.

        A line with a `revision` above 0 replaces the earlier lines of the same key (an episode appended again as it
        grew or was graded, see `Trajectory.revision`): each episode is read once, as last written, where it was
        first written."""
        if not self.trajectories_path.is_file():
            return
        revised = self._last_revisions()
        emitted: set[tuple[str, int]] = set()
        for lineno, line in self._complete_lines():
            trajectory = self._parse(lineno, line)
            if trajectory.key not in revised:
                yield trajectory
            elif trajectory.key not in emitted:
                emitted.add(trajectory.key)
                yield revised[trajectory.key]

    def _parse(self, lineno: int, line: str) -> Trajectory:
        try:
            return Trajectory.model_validate_json(line)
        except ValidationError as exc:
            raise RunFolderError(
                f"line {lineno} of {self.trajectories_path} is not a valid trajectory: {_first_error(exc)}; "
                "fix or remove that line (keep a copy of the file first) and re-run"
            ) from exc

    def _complete_lines(self) -> Iterator[tuple[int, str]]:
        """(line number, line) of every complete, non-empty line (a crashed writer's torn tail is not one)."""
        with open(self.trajectories_path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.endswith("\n"):
                    return
                if line.strip():
                    yield lineno, line

    def _last_revisions(self) -> dict[tuple[str, int], Trajectory]:
        """Key -> last revision of each episode written more than once (only lines that carry a revision are
        parsed, so a file without any costs one scan of its text)."""
        last: dict[tuple[str, int], Trajectory] = {}
        for lineno, line in self._complete_lines():
            if '"revision":' in line:
                revised = self._parse(lineno, line)
                last[revised.key] = revised
        return last

    def finished_keys(self) -> set[tuple[str, int]]:
        """(task id, sample index) of every recorded episode."""
        return {t.key for t in self.iter_trajectories()}

    def append(self, trajectory: Trajectory) -> None:
        """Append one trajectory as one line, flushed to the OS before returning."""
        if self._handle is None:
            self.trajectories_path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.trajectories_path, "a", encoding="utf-8")
        self._handle.write(trajectory.model_dump_json() + "\n")
        self._handle.flush()
        self._created = []  # a job that wrote an episode keeps its record

    def close(self) -> None:
        """Close the trajectory file and release the writer lock."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None


def _first_error(exc: ValidationError) -> str:
    """The first validation error as `field.path: message`, with how many more there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where + ': ' if where else ''}{first.get('msg', 'invalid')}{more}"


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
