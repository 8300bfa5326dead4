"""`agentkd improve`: improvement rounds on a run (probe → targeted collection → SFT (+DPO) → evaluate)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentkd.cli import pipeline
from agentkd.cli.common import (
    MaxStepsOption,
    SandboxOption,
    choice,
    console,
    exit_code,
    fail,
    field_option,
    run_folder,
    sandbox_config,
)
from agentkd.cli.progress import RichProgress
from agentkd.policies.settings import CascadeOptions
from agentkd.train.config import TrainConfig

if TYPE_CHECKING:
    from agentkd.rounds import RoundStage


def improve_command(
    run: Annotated[Path, typer.Option(
        "--run", callback=run_folder,
        help="A run folder with teacher trajectories (e.g. from `agentkd pipeline`); rounds go to RUN/rounds/<k>/.")],
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Rounds after the run itself (round 0). Raising it "
                                                                "later adds rounds; finished rounds are kept.")] = 2,
    budget: Annotated[int, typer.Option("--budget", min=1, help="Teacher episodes collected per round.")] = 10,
    probe_tasks: Annotated[int, typer.Option(
        "--probe-tasks", min=1, help="Unseen train tasks each round probes the previous student on.")] = 20,
    probe: Annotated[str, typer.Option(
        "--probe", **choice("student", "cascade"),
        help="student (failures; no teacher calls) | cascade (failures and deferred steps).")] = "student",
    group_by: Annotated[str, typer.Option(
        "--group-by", **choice("template", "kind", "none"),
        help="Nearby tasks: same template (else kind) | kind | none.")] = "template",
    dpo: Annotated[bool, typer.Option("--dpo", help="Add a preference (DPO) stage after SFT in every round.")] = False,
    eval_tasks: Annotated[int, typer.Option("--eval-tasks", min=1, help="Held-out test tasks per evaluation.")] = 10,
    epochs: Optional[float] = field_option(TrainConfig, "epochs", unset=True),
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="YAML training settings (keys of agentkd.TrainConfig), as for `agentkd train`.")] = None,
    samples: int = field_option(CascadeOptions, "samples", scope="Cascade"),
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Episodes run at once.")] = 2,
    max_steps: MaxStepsOption = None,
    sandbox: SandboxOption = None,
    settings: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Any other setting of agentkd.ImproveSettings (repeatable; a dotted KEY "
                                           "reaches the training settings), e.g. --set temperature=0.5 --set "
                                           "train.lr=5e-4.")] = None,
) -> None:
    """Improvement rounds: probe the student on unseen train tasks, collect the teacher where it failed, fine-tune,
    evaluate on the test split; one table of success and teacher share per round, and RUN/report.html.

    Example: agentkd improve --run runs/demo --rounds 2 --budget 25"""
    from agentkd.errors import AgentKDError
    from agentkd.rounds import ImproveSettings, next_stage
    from agentkd.specs import with_settings
    from agentkd.train import resolve_config

    try:
        chosen = ImproveSettings(
            rounds=rounds, budget=budget, probe_tasks=probe_tasks, probe=probe, group_by=group_by, dpo=dpo,  # type: ignore[arg-type]
            eval_tasks=eval_tasks, train=resolve_config(config, epochs=epochs), samples=samples,
            concurrency=concurrency, max_steps=max_steps, sandbox=sandbox_config(sandbox))
        if settings:
            chosen = ImproveSettings.model_validate(with_settings(chosen.model_dump(), settings))
    except (AgentKDError, ValueError) as exc:
        fail(str(exc))
    started = time.perf_counter()
    last = None
    while True:
        try:
            stage = next_stage(run, chosen)
        except (AgentKDError, ValueError) as exc:
            fail(str(exc))
        if stage is None:
            break
        if stage.key == last:
            fail(f"{stage.title}: the stage finished without writing its output; see the messages above")
        last = stage.key
        console.print(f"\n[{stage.round}/{chosen.rounds}] {stage.title}", soft_wrap=True, markup=False)
        began = time.perf_counter()
        try:
            execute(stage)
        except (AgentKDError, ValueError) as exc:
            fail(f"{stage.title} failed: {exc}\nFix the problem and re-run the same command: finished stages and "
                 "rounds are kept, the round continues where it stopped.", exit_code(exc))
        console.print(f"  done in {time.perf_counter() - began:.0f} s", markup=False)
    print_rounds(run, time.perf_counter() - started)
    pipeline.write_report(run)


def execute(stage: RoundStage) -> None:
    """A stage's job, its progress drawn as its command draws it; a function directly."""
    if callable(stage.action):
        stage.action()
    else:
        stage.action.execute(RichProgress())


def print_rounds(run: Path, seconds: float) -> None:
    from agentkd.rounds import round_rows

    table = Table(title=f"agentkd improve: {run} ({seconds:.0f} s this time)")
    for column in ("round", "teacher episodes (new)", "probe success", "targets", "student success (95% CI)",
                   "cascade success (95% CI)", "cascade teacher share"):
        table.add_column(column)
    for row in round_rows(run):
        table.add_row(str(row["round"]), f"{row['teacher_episodes']} ({row['new_teacher_episodes']})",
                      _pct(row.get("probe_success")),
                      ", ".join(f"{n} {k}" for k, n in (row.get("targets") or {}).items()) or "-",
                      _ci(row.get("student_success"), row.get("student_ci95")),
                      _ci(row.get("cascade_success"), row.get("cascade_ci95")), _pct(row.get("cascade_teacher_share")))
    Console(width=max(Console().width, 140)).print(table)
    console.print(f"rounds: {run}/rounds/<k>/round.json; all rounds: {run}/rounds/summary.json", soft_wrap=True,
                  markup=False)


def _pct(value: object) -> str:
    return "-" if value is None else f"{float(value):.0%}"  # type: ignore[arg-type]


def _ci(value: object, ci: object) -> str:
    if value is None:
        return "-"
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"{float(value):.0%} ({ci[0]:.0%}–{ci[1]:.0%})"  # type: ignore[arg-type]
    return _pct(value)
