"""A job as a plan sees it: anything that runs itself, and a titled stage holding one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agentkd.jobs.progress import Progress


class Job(Protocol):
    """A job that runs itself, reporting to `progress`; running the same job again resumes it."""

    def execute(self, progress: Progress = ...) -> Any:
        """Check, prepare and run the job; its result (stats, a report, a trained student)."""


@dataclass
class Stage:
    """One stage of a plan (`agentkd pipeline`, `agentkd bench icd`): its title and its job."""

    title: str
    job: Job | None
    """What to run; None when the stage's output already exists and is kept."""
    report: str | None = None
    """RUN/eval/<report>.json this stage writes, for a results table."""
