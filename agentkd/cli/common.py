"""What every command shares: the consoles, option definitions, error exits, progress bars.

Nothing heavy is imported here: `agentkd --help` must print without loading litellm, LangGraph or FAISS.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Iterator, NoReturn, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

if TYPE_CHECKING:
    from agentkd.tools.sandbox import SandboxConfig

console = Console(stderr=True)
"""Progress, status and errors (stderr); tables go to stdout."""

RunOption = Annotated[Path, typer.Option("--run", help="Run folder made by `agentkd collect`.")]
SandboxOption = Annotated[Optional[str], typer.Option(
    "--sandbox", help="Isolation of model-written code: auto (bubblewrap, refuse if missing) | bwrap | none "
                      "(no isolation; only for trusted models). Default: $AGENTKD_SANDBOX or auto.")]
MaxStepsOption = Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Override the env's step limit.")]
ApiBaseOption = Annotated[Optional[str], typer.Option("--api-base", help="Base URL of an OpenAI-compatible teacher server.")]
EnvOption = Annotated[str, typer.Option(
    "--env", help="Environment: built-in name (factqa, mathcode, apiworld), path/to/env.py[:attr] or module:attr.")]
EnvArgOption = Annotated[Optional[list[str]], typer.Option(
    "--env-arg", help="KEY=VALUE passed to the environment's function (repeatable), e.g. --env-arg tasks_per_split=500.")]


class CommandFailed(Exception):
    """Stop the command with `message` and exit code `code` (raised by executors, shown by `exit_on_error`)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Turn agentkd's errors (and a bad value) into one red line and a non-zero exit."""
    from agentkd.errors import AgentKDError

    try:
        yield
    except CommandFailed as exc:
        fail(str(exc), exc.code)
    except (AgentKDError, ValueError) as exc:
        fail(str(exc))


@contextmanager
def stop_cleanly(progress: Progress, kept: str, interrupted: str) -> Iterator[None]:
    """Run a long stage under a live progress display. On an agentkd error or Ctrl-C the display is stopped
    first (so the message is not drawn over) and CommandFailed says what is kept (`kept`) or how to go on
    after an interrupt (`interrupted`, exit code 130)."""
    from agentkd.errors import AgentKDError

    try:
        yield
    except AgentKDError as exc:
        progress.stop()
        raise CommandFailed(f"{exc}\n{kept}" if kept else str(exc)) from exc
    except KeyboardInterrupt:
        progress.stop()
        raise CommandFailed(f"interrupted; {interrupted}", code=130) from None


def sandbox_config(isolation: Optional[str], **limits: float) -> SandboxConfig:
    """The sandbox settings from --sandbox (checked when a job is prepared)."""
    from agentkd.tools.sandbox import SandboxConfig

    return SandboxConfig(**limits, **({"isolation": isolation} if isolation else {}))


def progress_bar(title: str, *fields: str) -> Progress:
    """A progress display: title, bar, done/total, the given text columns, elapsed and remaining time."""
    return Progress(TextColumn(f"[bold]{title}[/]"), BarColumn(), MofNCompleteColumn(), *(TextColumn(f) for f in fields),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def parse_price(text: Optional[str], option: str) -> Optional[tuple[float, float]]:
    """`0.15,0.60` -> (0.15, 0.6): $ per 1M prompt and completion tokens."""
    if text is None:
        return None
    try:
        prompt, completion = (float(x) for x in text.split(","))
    except ValueError:
        fail(f"{option} takes two numbers, $ per 1M prompt and completion tokens, e.g. 0.15,0.60")
    return (prompt, completion)
