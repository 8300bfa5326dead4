"""Task sources: a list, a dict of split -> list, a JSONL file, or a generator function."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Union

from agentkd.errors import EnvironmentDefinitionError
from agentkd.records import Task

_SLICE = re.compile(r"^(?P<split>[^\[\]]+)\[(?P<start>\d*):(?P<stop>\d*)\]$")

TaskLike = Union[Task, Mapping[str, Any]]
TaskSource = Union[
    Iterable[TaskLike], Mapping[str, Iterable[TaskLike]], str, Path, Callable[[str], Iterable[TaskLike]]
]


def _coerce(item: TaskLike, split: str | None, where: str) -> Task:
    if isinstance(item, Task):
        return item if split is None or item.split == split else item.model_copy(update={"split": split})
    if not isinstance(item, Mapping):
        raise EnvironmentDefinitionError(f"{where}: a task must be a Task or a dict, got {type(item).__name__}")
    data = dict(item)
    if split is not None:
        data.setdefault("split", split)
    if "prompt" not in data and "question" in data:
        data["prompt"] = data.pop("question")
    try:
        return Task(**data)
    except Exception as exc:
        raise EnvironmentDefinitionError(f"{where}: invalid task {str(item)[:120]!r}: {exc}") from exc


def read_jsonl_tasks(path: Path) -> list[Task]:
    """Tasks from a JSONL file, one object per line (fields of Task; `question` is an alias of `prompt`)."""
    if not path.is_file():
        raise EnvironmentDefinitionError(f"task file {path} does not exist")
    tasks = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise EnvironmentDefinitionError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
        tasks.append(_coerce(item, None, f"{path}:{lineno}"))
    return tasks


def base_split(split: str) -> str:
    """The split a slice is cut from (`train[150:170]` -> `train`); a plain split name as it is."""
    sliced = _SLICE.match(split)
    return sliced["split"] if sliced else split


class TaskSet:
    """The tasks of an environment, grouped by split, with ids checked for uniqueness."""

    def __init__(self, source: TaskSource, splits: Iterable[str] | None = None) -> None:
        self._generator: Callable[[str], Iterable[TaskLike]] | None = None
        self._by_split: dict[str, list[Task]] = {}
        if callable(source) and not isinstance(source, (str, Path)):
            if not splits:
                raise EnvironmentDefinitionError(
                    "a task generator needs the list of splits it serves: pass splits=['train', 'test']"
                )
            self._generator = source
            self.splits = list(splits)
            return
        if isinstance(source, (str, Path)):
            tasks = read_jsonl_tasks(Path(source))
        elif isinstance(source, Mapping):
            tasks = [_coerce(t, str(s), f"split {s!r}") for s, items in source.items() for t in items]
        else:
            tasks = [_coerce(t, None, "tasks") for t in source]
        if not tasks:
            raise EnvironmentDefinitionError("environment has no tasks")
        self._check_unique(tasks, "tasks")
        for task in tasks:
            self._by_split.setdefault(task.split, []).append(task)
        declared = list(splits) if splits else list(self._by_split)
        undeclared = sorted(set(self._by_split) - set(declared))
        if undeclared:
            raise EnvironmentDefinitionError(f"tasks use splits {undeclared} that are not in splits={declared}")
        self.splits = declared

    @staticmethod
    def _check_unique(tasks: list[Task], where: str) -> None:
        seen: set[str] = set()
        dupes = sorted({t.id for t in tasks if t.id in seen or seen.add(t.id)})  # type: ignore[func-returns-value]
        if dupes:
            raise EnvironmentDefinitionError(f"{where}: duplicate task ids {dupes[:5]}; every task id must be unique")

    def get(self, split: str) -> list[Task]:
        """All tasks of `split`, in a stable order. `split[a:b]` is the slice a..b-1 of that split (e.g. a dev
        slice of train that a collection of the first N train tasks never reaches: `train[1000:1030]`)."""
        from agentkd.errors import UnknownSplitError

        sliced = _SLICE.match(split)
        if sliced:
            start, stop = sliced["start"], sliced["stop"]
            tasks = self.get(sliced["split"])
            chosen = tasks[int(start) if start else None:int(stop) if stop else None]
            if tasks and not chosen:
                raise UnknownSplitError(f"the slice {split!r} holds no tasks: {sliced['split']} has {len(tasks)} "
                                        f"(tasks 0 to {len(tasks) - 1}); choose a slice inside that range")
            return chosen
        if split not in self.splits:
            raise UnknownSplitError(f"unknown split {split!r}; this environment has {self.splits}: choose one of them "
                                    f"(--split on the command line) or declare a {split!r} split in its tasks")
        if self._generator is not None:
            if split not in self._by_split:
                tasks = [_coerce(t, split, f"generator split {split!r}") for t in self._generator(split)]
                self._check_unique(tasks, f"split {split!r}")
                self._by_split[split] = tasks
        return list(self._by_split.get(split, []))
