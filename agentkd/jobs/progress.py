"""What a running job reports: a counted stage, a phase, a note. The library says what; a caller draws it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """What a job reports while it runs. The command line draws it with Rich; `SilentProgress` draws nothing."""

    def start(self, title: str, total: int | None, text: str = "") -> None:
        """A counted stage begins: `total` units (None: not known yet), `text` shown beside the count."""

    def update(self, completed: int, total: int | None = None, text: str | None = None) -> None:
        """`completed` units so far (and the total once it is known); `text` replaces the text beside the count."""

    def status(self, message: str) -> None:
        """A phase without a count (a status line), replacing the previous one."""

    def note(self, message: str) -> None:
        """One line to keep (what the filters kept, the tasks chosen, a rate limit's totals)."""

    def done(self) -> None:
        """The stage or phase ended (or failed): stop drawing it, so that what follows is not drawn over."""


class SilentProgress:
    """A progress that draws nothing: what a job reports to when its caller shows nothing."""

    def start(self, title: str, total: int | None, text: str = "") -> None:
        pass

    def update(self, completed: int, total: int | None = None, text: str | None = None) -> None:
        pass

    def status(self, message: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def done(self) -> None:
        pass


SILENT = SilentProgress()
"""The default progress of `job.execute()`."""
