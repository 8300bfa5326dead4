"""Run a plan's stages (`agentkd pipeline`, `agentkd bench icd`): a `[i/n] title` line, then the stage's job with its
progress drawn; a failure stops the command naming the stage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentkd.cli.common import console, exit_code, fail
from agentkd.cli.progress import RichProgress

if TYPE_CHECKING:
    from agentkd.jobs import Stage


def run_stages(planned: list[Stage]) -> None:
    """Each stage in order; a stage without a job (its output is there) is said to be kept. Every job resumes."""
    from agentkd.errors import AgentKDError

    for number, stage in enumerate(planned, 1):
        console.print(f"\n[{number}/{len(planned)}] {stage.title}" + ("" if stage.job else ": already done, kept"))
        if stage.job is None:
            continue
        try:
            stage.job.execute(RichProgress())
        except (AgentKDError, ValueError) as exc:
            fail(f"stage {number} ({stage.title}) failed: {exc}\nFix the problem and re-run the same command: "
                 "finished stages resume.", exit_code(exc))
