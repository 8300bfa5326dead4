"""`agentkd calibrate`: choose a confidence cascade's threshold on a dev slice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentkd.calibrate.settings import CalibrationSettings
from agentkd.cli.common import (
    ApiBaseOption,
    MaxStepsOption,
    RunOption,
    SandboxOption,
    exit_on_error,
    field_option,
    sandbox_config,
)
from agentkd.cli.eval import SetOption
from agentkd.cli.progress import RichProgress
from agentkd.policies.settings import ICDSettings, StudentSettings

if TYPE_CHECKING:
    from agentkd.calibrate import Calibration, ThresholdChoice

CURVE_ROWS = 12
"""Rows of the threshold curve printed (the chosen one always among them)."""


def calibrate_command(
    run: RunOption,
    split: Annotated[Optional[str], typer.Option(
        "--split", help="Dev slice to calibrate on: tasks the run has not collected, e.g. 'train[50:70]'.")] = None,
    traffic: Annotated[bool, typer.Option(
        "--traffic", help="Instead of a dev slice: choose the threshold of `agentkd gateway --cascade RUN` from RUN's "
                          "graded gateway episodes (writes RUN/calibration/gateway/traffic.json; start the gateway "
                          "with --calibrated to use it).")] = False,
    target: float = field_option(CalibrationSettings, "target"),
    reference: str = field_option(CalibrationSettings, "reference", scope="With --split"),
    check_thresholds: Annotated[Optional[str], typer.Option(
        "--check-thresholds", metavar="T1,T2,...",
        help="With --split: also run the cascade on the dev tasks at these thresholds (and at the calibrated one) "
             "and keep the cheapest whose success is within --margin of the teacher's there.")] = None,
    margin: float = field_option(CalibrationSettings, "margin", scope="With --check-thresholds"),
    policy: str = field_option(CalibrationSettings, "policy"),
    student: str = field_option(StudentSettings, "model", "--student"),
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="Teacher (default: the run's teacher).")] = None,
    k: int = field_option(ICDSettings, "k", scope="Cascade with an untrained student"),
    max_tokens: int = field_option(StudentSettings, "max_tokens", scope="Student"),
    n: Annotated[Optional[int], typer.Option("--n", min=1, help="Number of tasks (default: the whole slice).")] = None,
    max_steps: MaxStepsOption = None,
    api_base: ApiBaseOption = None,
    student_api_base: Optional[str] = field_option(StudentSettings, "api_base", "--student-api-base"),
    name: Annotated[Optional[str], typer.Option(
        "--name", help="RUN/calibration/<name>.json (default: the cascade's name without its threshold).")] = None,
    settings: SetOption = None,
    sandbox: SandboxOption = None,
) -> None:
    """Run the teacher over a dev slice with the cascade's student scoring every step beside it, and choose the
    confidence threshold for --target: writes RUN/calibration/<name>.json with the calibrated policy.

    Example: agentkd calibrate --run runs/demo --split 'train[50:60]' --student trained --target 0.95"""
    if traffic == (split is not None):
        raise typer.BadParameter("give --split 'train[a:b]' (a dev slice the teacher runs) or --traffic (the graded "
                                 "episodes the cascade gateway recorded in RUN), one of them", param_hint="--split")
    if traffic:
        from agentkd.gateway.calibration import calibrate_traffic

        with exit_on_error():
            found = calibrate_traffic(run, target)
        print_curve(f"calibrate the cascade gateway: {found.steps} steps of {found.episodes} graded episodes "
                    f"({found.ungraded} ungraded left out), target {found.target:.0%}", found.curve, found.chosen)
        in_use = ", ".join(f"{t:g}" for t in found.thresholds_in_use) or "none recorded"
        Console().print(f"(the traffic ran under threshold {in_use}) start the gateway with it: agentkd gateway "
                        f"--cascade {run} --student MODEL --calibrated", soft_wrap=True)
        return
    assert split is not None
    from agentkd.calibrate import CalibrateJob
    from agentkd.evaluate.job import run_teacher_spec
    from agentkd.policies.names import parse_policy_name
    from agentkd.policies.registry import validate_policy_spec
    from agentkd.specs import PolicySpec, with_settings

    with exit_on_error():
        spec = parse_policy_name(policy, run_teacher_spec(run, teacher, api_base), student, agreement="confidence",
                                 k=k, max_tokens=max_tokens, api_base=student_api_base)
        if settings:
            spec = validate_policy_spec(PolicySpec(kind=spec.kind, settings=with_settings(spec.settings, settings)))
        job = CalibrateJob(run=run, policy=spec, split=split, n=n, target=target, reference=reference, name=name,
                           max_steps=max_steps, sandbox=sandbox_config(sandbox),
                           check_thresholds=parse_thresholds(check_thresholds), margin=margin)
        calibration = job.execute(RichProgress())
    print_calibration(calibration, run)


def parse_thresholds(text: str | None) -> list[float]:
    """`--check-thresholds 0.9,0.98` as numbers in [0, 1] (BadParameter naming the value that is not)."""
    if not text:
        return []
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise typer.BadParameter(f"{part.strip()!r} is not a threshold: give numbers from 0 to 1 separated by "
                                     "commas, e.g. 0.9,0.98", param_hint="--check-thresholds")
        values.append(value)
    return values


def print_calibration(c: Calibration, run: object) -> None:
    """The threshold curve around the chosen threshold, the episode checks, and how to use it."""
    whose = "the teacher's solved tasks" if c.reference == "solved" else "tasks"
    print_curve(f"calibrate {c.name}: {c.steps} steps of {c.tasks} {whose} on {c.split}, target {c.target:.0%}",
                c.curve, c.chosen)
    if c.episodes is not None:
        by = c.episodes
        table = Table(title=f"the cascade on {by.episodes} episodes of {c.split} (the teacher solved "
                            f"{by.teacher_successes}; a threshold qualifies within {by.margin * 100:g} points of it)")
        for column in ("threshold", "success", "student share", "$ / episode"):
            table.add_column(column, justify="right")
        for check in by.checks:
            cells = [f"{check.threshold:g}", f"{check.successes}/{check.episodes}", f"{check.student_share:.0%}",
                     f"{check.cost_per_episode_usd:.5f}"]
            table.add_row(*(f"[bold]{v}[/bold]" for v in cells) if check == by.chosen else cells)
        Console().print(table)
        Console().print(f"chosen threshold {c.threshold:g}: {c.describe()}" if by.chosen else
                        f"no threshold checked kept the teacher's success; the calibrated {c.threshold:g} stays")
    Console().print(f"evaluate it: agentkd eval --run {run} --policy cascade --calibrated {c.name}")


def print_curve(title: str, curve: list[ThresholdChoice], chosen: ThresholdChoice) -> None:
    """The rows of a threshold curve around the chosen threshold, and what it does."""
    table = Table(title=title)
    for column in ("threshold", "student share", "est. step accuracy", "student-taken steps right"):
        table.add_column(column, justify="right")
    at = curve.index(chosen) if chosen in curve else 0
    start = max(0, min(at - CURVE_ROWS // 2, len(curve) - CURVE_ROWS))
    for i, row in enumerate(curve[start:start + CURVE_ROWS], start):
        right = "—" if row.student_accuracy is None else f"{row.student_accuracy:.0%}"
        cells = [f"{row.threshold:g}", f"{row.student_share:.0%}", f"{row.step_accuracy:.1%}", right]
        table.add_row(*(f"[bold]{v}[/bold]" for v in cells) if i == at else cells)
    console = Console()
    console.print(table)
    console.print(f"chosen threshold {chosen.threshold:g}: the student takes {chosen.student_share:.0%} of the "
                  f"steps at an estimated step accuracy of {chosen.step_accuracy:.1%}.")
