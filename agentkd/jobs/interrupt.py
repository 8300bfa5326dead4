"""Run a job's episodes (a coroutine) so that Ctrl-C stops them within seconds and keeps what is written."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")
FORCED_EXIT = "interrupted: finished work is on disk; re-run the same command to resume."
"""What is said on stderr when a second Ctrl-C (or a cancel that does not finish) ends the process at once."""


def run_interruptibly(coroutine: Coroutine[Any, Any, T], grace_s: float = 5.0) -> T:
    """`asyncio.run` that Ctrl-C stops within seconds: the first Ctrl-C cancels the work (episodes in flight are
    dropped, workers and states closed, everything written is kept) and raises KeyboardInterrupt; if cancelling
    does not finish within `grace_s` (a model call blocking a thread) or a second Ctrl-C comes, the process
    exits at once with code 130: every finished trajectory is already flushed to disk."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(coroutine)
    deadline = threading.Timer(grace_s, _exit_now)
    deadline.daemon = True
    interrupted = threading.Event()

    def interrupt(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            _exit_now()
        interrupted.set()
        loop.call_soon_threadsafe(task.cancel)
        deadline.start()

    previous = signal.signal(signal.SIGINT, interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        result = loop.run_until_complete(task)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        deadline.cancel()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        try:  # as asyncio.run does, minus waiting for executor threads (a blocked model call must not hold us)
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for leftover in pending:
                leftover.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    if interrupted.is_set():
        raise KeyboardInterrupt
    return result


def _exit_now() -> None:
    sys.stdout.flush()
    print(FORCED_EXIT, file=sys.stderr, flush=True)
    os._exit(130)
