"""`agentkd report`: one self-contained HTML page per run (overview, plots, a trajectory viewer).

`data` reads the run folder, `svg` and `plots` draw the figures as inline SVG, `page` assembles the page
with its stylesheet (`report.css`) and script (`viewer.js`).
"""

from __future__ import annotations

from pathlib import Path

from agentkd.report.data import ReportData, gather
from agentkd.report.page import render, write
from agentkd.run.layout import RunLayout


def write_report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of run folder `run` to `out` (default RUN/report.html) and return its path.
    Re-running rewrites it with whatever the run holds now (new evaluations included)."""
    target = Path(out) if out is not None else RunLayout(run).report_html
    return write(gather(run), target)


__all__ = ["ReportData", "gather", "render", "write", "write_report"]
