"""`agentkd pipeline`: the main job end to end, each stage a job run as its own command runs it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentkd.cli import report
from agentkd.cli.common import (
    BUILTIN_ENVS,
    EnvArgOption,
    MaxStepsOption,
    SandboxOption,
    choice,
    console,
    fail,
    field_option,
    run_folder,
    sandbox_config,
)
from agentkd.cli.stages import run_stages
from agentkd.evaluate.prices import StatedPrices
from agentkd.policies.settings import ICD_STUDENT, CascadeOptions
from agentkd.train.config import TrainConfig

if TYPE_CHECKING:
    from agentkd.jobs import Stage


def pipeline_command(
    run: Annotated[Path, typer.Option(
        "--run", callback=run_folder,
        help="Run folder for every stage. Re-running resumes finished stages.")] = Path("runs/demo"),
    env: Annotated[str, typer.Option(
        "--env", help=f"Environment: built-in name ({BUILTIN_ENVS}), path/to/env.py[:attr] or module:attr, with a "
                      "train and a test split (and a reference solver when --teacher is reference).")] = "factqa",
    env_arg: EnvArgOption = None,
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher: reference or a litellm model string.")] = "reference",
    route: Annotated[str, typer.Option(
        "--route", **choice("sft", "icd"),
        help="sft: fine-tune the student (eval it alone and in the cascade) | icd: train nothing; eval a frozen "
             "student alone, with retrieved teacher steps, and in the cascade.")] = "sft",
    student: Annotated[Optional[str], typer.Option("--student", help=(
        f"sft: the base model fine-tuned (default {TrainConfig.model_fields['student'].default}); icd: the frozen "
        f"student (default {ICD_STUDENT})."))] = None,
    train_tasks: Annotated[int, typer.Option("--train-tasks", min=1, help="Teacher episodes collected and trained on.")] = 100,
    epochs: float = field_option(TrainConfig, "epochs"),
    eval_tasks: Annotated[int, typer.Option("--eval-tasks", min=1, help="Held-out test tasks per evaluated policy.")] = 10,
    samples: int = field_option(CascadeOptions, "samples", scope="Cascade"),
    teacher_price: Optional[str] = field_option(StatedPrices, "teacher", "--teacher-price", unset=True,
                                                metavar="IN,OUT[,CACHED[,WRITE]]"),
    student_price: Optional[str] = field_option(StatedPrices, "student", "--student-price", unset=True,
                                                metavar="IN,OUT[,CACHED[,WRITE]]"),
    max_steps: MaxStepsOption = None,
    sandbox: SandboxOption = None,
    settings: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Any other setting of agentkd.pipeline.PipelineSettings (repeatable), e.g. "
                                           "--set lr=5e-4 --set concurrency=4.")] = None,
) -> None:
    """The main job end to end: collect → index → train → eval teacher, fine-tuned student and cascade; one table
    and RUN/report.html. `--route icd`: collect → index → eval teacher, frozen student, ICD student and cascade.

    Example: agentkd pipeline --run runs/demo --train-tasks 100 --eval-tasks 10"""
    from agentkd.errors import AgentKDError
    from agentkd.pipeline import PipelineSettings, check_splits, stages
    from agentkd.specs import EnvSpec, parse_env_args, with_settings

    try:
        chosen = PipelineSettings(env=EnvSpec(target=env, kwargs=parse_env_args(env_arg), given=env),
                                  teacher=teacher, route=route, student=student, train_tasks=train_tasks,
                                  epochs=epochs, eval_tasks=eval_tasks, samples=samples, max_steps=max_steps,
                                  sandbox=sandbox_config(sandbox), teacher_price=teacher_price,
                                  student_price=student_price)
        if settings:
            chosen = PipelineSettings.model_validate(with_settings(chosen.model_dump(), settings))
        planned = stages(run, chosen)
        check_splits(chosen.env)
    except (AgentKDError, ValueError) as exc:
        fail(str(exc))
    started = time.perf_counter()
    run_stages(planned)
    print_results(run, planned, env, eval_tasks, time.perf_counter() - started)
    write_report(run)


def write_report(run: Path) -> None:
    """The last step: RUN/report.html, its path printed (a failure here never hides the results above)."""
    from agentkd.errors import AgentKDError

    try:
        path = report.write(run)
    except (AgentKDError, OSError, ValueError) as exc:
        console.print(f"[yellow]warning:[/] the report could not be written ({exc}); "
                      f"try `agentkd report --run {run}`")
        return
    console.print(f"report: {path} (open it in a browser; `agentkd report --run {run}` refreshes it)", soft_wrap=True, markup=False)


def print_results(run: Path, planned: list[Stage], env: str, eval_tasks: int, seconds: float) -> None:
    from agentkd.cli.eval import times
    from agentkd.pipeline import price_notes, results
    from agentkd.run import RunLayout

    table = Table(title=f"agentkd pipeline: {env}, {eval_tasks} held-out test tasks ({seconds:.0f} s)")
    for column in ("policy", "success (95% CI)", "mean steps", "teacher share of steps", "$ / episode",
                   "list $ / episode", "x cheaper (list)", "break-even", "s / episode"):
        table.add_column(column, no_wrap=True)
    rows = results(run, planned)
    for row in rows:
        lo, hi = row["success_ci95"]
        share = float(row["student_share_of_steps"])
        versus, be = row.get("versus_teacher") or {}, row.get("break_even") or {}
        cheaper = f"{times(versus.get('cheaper'))} ({times(versus.get('cheaper_at_list'))})" if versus else "—"
        table.add_row(str(row["policy"]), f"{row['success_rate']:.0%} ({lo:.0%}–{hi:.0%})", f"{row['mean_steps']:.2f}",
                      f"{1 - share:.0%}", usd(row.get("cost_per_episode_usd")),
                      usd(row.get("list_cost_per_episode_usd")), cheaper,
                      "—" if be.get("episodes") is None else f"{be['episodes']:,.0f} episodes",
                      f"{row['mean_episode_latency_s']:.1f}")
    out = Console()
    Console(width=max(out.width, 160)).print(table)  # never wrap the one table that matters into a column soup
    layout = RunLayout(run)
    notes = price_notes(rows)
    if notes:
        console.print("$ per episode: cache-aware (prompt tokens read from the cache at the cache-read price) and at "
                      "list prices; x cheaper and break-even (collection $ ÷ $ saved per episode) against the teacher "
                      "row. Priced at", soft_wrap=True)
        for note in notes:
            console.print(f"  {note}", soft_wrap=True, markup=False)
    console.print(f"reports: {layout.eval_dir}/*.json; trajectories: {layout.eval_dir}/*.jsonl; "
                  f"student: {layout.student_merged}")


def usd(value: object) -> str:
    """$ per episode, with enough digits for the cents-and-below amounts of small models."""
    if value is None:
        return "—"
    amount = float(value)  # type: ignore[arg-type]
    return f"${amount:.4f}" if amount >= 0.01 else f"${amount:.5f}"
