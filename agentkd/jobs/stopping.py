"""How a long stage stops: the drawing first, then one error that says what is kept or how to go on."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from agentkd.errors import AgentKDError, JobFailed, JobInterrupted
from agentkd.jobs.progress import Progress


@contextmanager
def stopping_cleanly(progress: Progress, kept: str | Callable[[], str], interrupted: str) -> Iterator[None]:
    """Run a long stage that `progress` draws. On an agentkd error or Ctrl-C the drawing stops first; then
    JobFailed adds what is kept (`kept`, or what it returns once the stage has stopped; without it the error
    passes as it is) or JobInterrupted says how to go on after the interrupt (`interrupted`). Any other
    exception stops the drawing and passes."""
    try:
        yield
    except AgentKDError as exc:
        progress.done()
        note = kept() if callable(kept) else kept
        if not note:
            raise
        raise JobFailed(f"{exc}\n{note}") from exc
    except KeyboardInterrupt:
        progress.done()
        raise JobInterrupted(f"interrupted; {interrupted}") from None
    except BaseException:
        progress.done()
        raise


def kept_note(path: Path, what: str) -> Callable[[], str]:
    """What a failed stage leaves (`what`, e.g. "trajectories", written to `path`), said once it has stopped:
    where they are kept and that re-running resumes, or that nothing was written and any settings may be
    used."""

    def note() -> str:
        if path.is_file() and path.stat().st_size > 0:
            with open(path, "rb") as handle:
                count = sum(1 for line in handle if line.strip())
            return f"The {count} {what} written so far are kept in {path}; fix the problem and re-run the same " \
                   "command to resume."
        return "Nothing was written (no episode finished); fix the problem and re-run, with other settings if " \
               "need be."

    return note
