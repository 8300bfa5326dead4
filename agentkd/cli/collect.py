"""`agentkd collect`: run a teacher over a split into a resumable run folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentkd.cli.common import (
    ApiBaseOption,
    BackendOption,
    EnvArgOption,
    EnvOption,
    MaxStepsOption,
    RayAddressOption,
    RpmOption,
    SandboxOption,
    TpmOption,
    WorkersOption,
    backend_config,
    choice,
    console,
    exit_on_error,
    fail,
    field_option,
    print_rate_limits,
    rate_limit_config,
    run_folder,
    sandbox_config,
)
from agentkd.cli.progress import RichProgress
from agentkd.policies.settings import LLMSettings

if TYPE_CHECKING:
    from agentkd.collect import CollectStats


def collect_command(
    ctx: typer.Context,
    env: EnvOption,
    teacher: Annotated[str, typer.Option(
        "--teacher", help="'reference' (the env's solver), a litellm model string, or a local alias (smollm2-135m).")],
    run: Annotated[Path, typer.Option(
        "--run", callback=run_folder, help="Run folder, e.g. runs/factqa-ref. Re-running the same command resumes.")],
    env_arg: EnvArgOption = None,
    split: Annotated[str, typer.Option("--split", help="Task split to run.")] = "train",
    n: Annotated[Optional[int], typer.Option("--n", min=1, help="Number of tasks (default: the whole split).")] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, help="Episodes run at once (per worker with --backend ray).")] = 8,
    samples_per_task: Annotated[int, typer.Option("--samples-per-task", min=1, help="Episodes per task.")] = 1,
    temperature: float = field_option(LLMSettings, "temperature", scope="Teacher"),
    max_tokens: int = field_option(LLMSettings, "max_tokens", scope="Teacher"),
    api_base: ApiBaseOption = None,
    first_thought: Optional[str] = field_option(LLMSettings, "first_thought", scope="Teacher"),
    max_steps: MaxStepsOption = None,
    sandbox: SandboxOption = None,
    exec_timeout: Annotated[float, typer.Option("--exec-timeout", min=0.1, help="Wall-clock seconds per code execution.")] = 30.0,
    backend: BackendOption = "local",
    ray_address: RayAddressOption = None,
    workers: WorkersOption = 2,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    on_failures: Annotated[Optional[str], typer.Option(
        "--on-failures", help="Targeted collection: the name of a train-side evaluation of this run (RUN/eval/NAME; "
                              "e.g. `agentkd eval --split train --unseen --name probe`). The teacher runs on the tasks "
                              "the student failed or deferred most, then on nearby tasks of the same template. "
                              "Evaluations on the test split are refused.")] = None,
    budget: Annotated[int, typer.Option(
        "--budget", min=1, help="Targeted collection: teacher episodes to spend.")] = 10,
    group_by: Annotated[str, typer.Option(
        "--group-by", **choice("template", "kind", "none"),
        help="Targeted collection: nearby = same template (else kind) | kind | none.")] = "template",
    recovery: Annotated[Optional[float], typer.Option(
        "--recovery", min=0.0, max=1.0,
        help="Error-recovery augmentation: this share of the episodes (0-1] gets one slipped step (a string argument "
             "misspelt) that the teacher then recovers from; the slip is shown to students, never trained on.")] = None,
) -> None:
    """Run a teacher over a split and append its trajectories to RUN/trajectories.jsonl.

    Example: agentkd collect --env factqa --teacher reference --run runs/demo --n 50"""
    from agentkd.collect.job import CollectJob
    from agentkd.policies.registry import teacher_spec
    from agentkd.run import RunLayout
    from agentkd.specs import EnvSpec, parse_env_args

    if on_failures is None and _given(ctx, "budget"):
        fail("--budget applies to a targeted collection: give --on-failures EVAL_NAME too (or --n for a plain one)",
             code=2)
    with exit_on_error():
        settings = {"temperature": temperature, "max_tokens": max_tokens, "api_base": api_base,
                    "first_thought": first_thought}
        job = CollectJob(
            run=run, env=EnvSpec(target=env, kwargs=parse_env_args(env_arg), given=env),
            teacher=teacher_spec(teacher, **settings), split=split, n=n, concurrency=concurrency,
            samples_per_task=samples_per_task, max_steps=max_steps,
            sandbox=sandbox_config(sandbox, timeout_s=exec_timeout),
            backend=backend_config(backend, ray_address, workers), rate_limit=rate_limit_config(rpm, tpm),
            on_failures=on_failures, budget=budget, group_by=group_by, recovery=recovery,
        )
        stats = job.execute(RichProgress())
    print_summary(stats, RunLayout(run).trajectories)
    print_rate_limits(stats, job.rate_limit is not None)


def _given(ctx: typer.Context, option: str) -> bool:
    """Whether `option` was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(option)
    return source is not None and source.name == "COMMANDLINE"


def print_summary(stats: CollectStats, trajectories: Path) -> None:
    table = Table(title="collection", show_header=False)
    table.add_row("episodes in run", str(stats.skipped + stats.done))
    table.add_row("new this time", str(stats.done))
    table.add_row("resumed (skipped)", str(stats.skipped))
    table.add_row("success (new)", f"{stats.success_rate:.1%}")
    table.add_row("errors / step-limit", f"{stats.errors} / {stats.step_limit}")
    table.add_row("mean steps (new)", f"{stats.steps / stats.done:.2f}" if stats.done else "-")
    table.add_row("cost (new)", f"${stats.cost_usd:.4f}")
    table.add_row("trajectories", str(trajectories))
    if stats.torn_bytes:
        console.print(f"[yellow]repaired[/] cut a torn last line ({stats.torn_bytes} bytes, from a crash mid-write) "
                      f"from {trajectories}; kept in {trajectories.with_suffix('.torn')}", soft_wrap=True)
    Console().print(table)
    if stats.workers_replaced:
        console.print(f"[yellow]Ray workers replaced[/] {stats.workers_replaced} died mid-run; their "
                      f"{stats.episodes_rerun} episodes in flight were run again (none written twice)")
    for msg in stats.error_messages:
        console.print(f"[yellow]episode error[/] {msg}")
