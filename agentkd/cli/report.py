"""`agentkd report`: write RUN/report.html (plots and a trajectory viewer), optionally open it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from agentkd.cli.common import RunOption, console, exit_on_error


def report_command(
    run: RunOption,
    out: Annotated[Optional[Path], typer.Option("--out", help="Where to write the page (default: RUN/report.html).")] = None,
    open_it: Annotated[bool, typer.Option("--open", help="Open the page in the default browser once written.")] = False,
) -> None:
    """One self-contained HTML page for the run: identity, collection, training curve, evaluations, plots
    (success against cost, teacher share by step, break-even, success by task kind) and every trajectory,
    filterable, step by step. Opens from disk; re-run it after more evaluations to refresh it.

    Example: agentkd report --run runs/demo"""
    with exit_on_error():
        path = write(run, out)
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.2f} MB)", soft_wrap=True, markup=False)
    if open_it:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            console.print("no browser could be started here; open the file above yourself")


def write(run: Path, out: Optional[Path] = None) -> Path:
    """Write the report (used by `agentkd pipeline` too)."""
    from agentkd.report import write_report

    return write_report(run, out)
