"""What a job reports (`agentkd.jobs.Progress`), drawn on stderr with Rich: a bar for a counted stage, a status
line for a phase, notes printed above them."""

from __future__ import annotations

from typing import Any, Optional

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.status import Status

from agentkd.cli.common import console


class RichProgress:
    """One job's progress on the command's console (stderr); tables and results go to stdout."""

    def __init__(self) -> None:
        self._bar: Optional[Progress] = None
        self._task: Optional[TaskID] = None
        self._status: Optional[Status] = None

    def start(self, title: str, total: Optional[int], text: str = "") -> None:
        self.done()
        self._bar = Progress(TextColumn(f"[bold]{escape(title)}[/]"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[text]}", markup=False), TimeElapsedColumn(),
                             TimeRemainingColumn(), console=console)
        self._bar.start()
        self._task = self._bar.add_task(title, total=total, text=text)

    def update(self, completed: int, total: Optional[int] = None, text: Optional[str] = None) -> None:
        if self._bar is None or self._task is None:
            return
        changes: dict[str, Any] = {"completed": completed}
        if total is not None:
            changes["total"] = total
        if text is not None:
            changes["text"] = text
        self._bar.update(self._task, **changes)

    def status(self, message: str) -> None:
        if self._status is None:
            self._status = console.status(message)
            self._status.start()
        else:
            self._status.update(message)

    def note(self, message: str) -> None:
        console.print(message, soft_wrap=True, markup=False)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar, self._task = None, None
        if self._status is not None:
            self._status.stop()
            self._status = None
