"""`agentkd bench icd`: an experiment as a command; its stages run as `agentkd pipeline`'s do, then its table."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentkd.bench.settings import IcdBenchSettings
from agentkd.cli.common import CONTEXT_SETTINGS, Command, Group, exit_on_error, field_option, parse_price, run_folder
from agentkd.cli.stages import run_stages

if TYPE_CHECKING:
    from agentkd.evaluate.costs import CostTable

bench_app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings=CONTEXT_SETTINGS, cls=Group,
                        help="Experiments that run jobs on one run folder and print one table.")
S = IcdBenchSettings


@bench_app.command("icd", cls=Command, short_help="The in-context distillation experiment and its cost table.")
def icd_command(
    run: Annotated[Path, typer.Option(
        "--run", callback=run_folder, help="Run folder of the experiment. Re-running resumes every stage.")],
    env: str = field_option(S, "env"),
    teacher: str = field_option(S, "teacher"),
    teacher_api_base: Optional[str] = field_option(S, "teacher_api_base"),
    student: str = field_option(S, "student"),
    train: int = field_option(S, "train"),
    split: str = field_option(S, "split"),
    n: int = field_option(S, "n"),
    policies: str = field_option(S, "policies"),
    k: int = field_option(S, "k"),
    max_tokens: int = field_option(S, "max_tokens"),
    sft: bool = field_option(S, "sft"),
    epochs: float = field_option(S, "epochs"),
    concurrency: int = field_option(S, "concurrency"),
    max_steps: Optional[int] = field_option(S, "max_steps"),
    teacher_price: Optional[str] = field_option(S, "teacher_price", unset=True, metavar="IN,OUT[,CACHED[,WRITE]]"),
    student_price: Optional[str] = field_option(S, "student_price", unset=True, metavar="IN,OUT[,CACHED[,WRITE]]"),
    partial: bool = field_option(S, "partial"),
    table_only: bool = field_option(S, "table_only"),
) -> None:
    """The in-context distillation experiment: collect teacher episodes on train, index them, (--sft) fine-tune the
    student, evaluate every policy of --policies on the same --n tasks of --split; one cost table against the
    teacher, written to RUN/eval/tables/icd@<split>.json. Choose settings on a dev slice of train, never on test.

    Example: agentkd bench icd --env factqa --run runs/icd-factqa --split 'train[1000:1020]' --n 20"""
    from agentkd.bench.icd import IcdBench

    settings = IcdBenchSettings(
        env=env, teacher=teacher, teacher_api_base=teacher_api_base, student=student, train=train, split=split, n=n,
        policies=policies, k=k, max_tokens=max_tokens, sft=sft, epochs=epochs, concurrency=concurrency,
        max_steps=max_steps, partial=partial, table_only=table_only,
        **{f"{role}_price": price for role, price in (("teacher", parse_price(teacher_price, "--teacher-price")),
                                                       ("student", parse_price(student_price, "--student-price")))
           if price})
    bench = IcdBench(run, settings)
    started = time.perf_counter()
    if not table_only:
        with exit_on_error():
            planned = bench.stages()
        run_stages(planned)
    with exit_on_error():
        written = bench.table(" ".join(["agentkd", *sys.argv[1:]]), time.perf_counter() - started)
    if written is None:
        print("the table needs the teacher's evaluation of this split too (--policies teacher)")
        return
    table = written.table
    print_table(table, f"{env}: {table.tasks} tasks of {split}; teacher {teacher}, student {student}; collection "
                       f"{table.collection['episodes']} episodes ({table.collection['successes']} solved), "
                       f"${table.collection['cost_usd']:.4f}")
    print(f"table: {written.path}")


def _tokens(role: dict[str, float]) -> str:
    """prompt/completion tokens per episode, with the cached part of the prompt when the server reported one."""
    cached = f" ({role['cached']:.0f} cached)" if role.get("cached") else ""
    return f"{role.get('prompt', 0):.0f}{cached}/{role.get('completion', 0):.0f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def print_table(table: CostTable, title: str) -> None:
    out = Table(title=title)
    for column in ("policy", "success (95% CI)", "teacher steps", "steps", "calls/step", "tokens T in/out",
                   "tokens S in/out", "$ / episode", "list $ / ep", "x cheaper (list)", "at most", "TFLOPs / ep",
                   "x fewer FLOPs",
                   "break-even ep", "s / episode", "deferred by quarter"):
        out.add_column(column)
    for row in table.rows:
        lo, hi = row.success_ci95
        out.add_row(
            row.name, f"{row.success_rate:.0%} ({lo:.0%}–{hi:.0%})", f"{row.teacher_share_of_steps:.0%}",
            f"{row.mean_steps:.2f}", f"{row.calls_per_step:.2f}",
            _tokens(row.tokens.get("teacher", {})), _tokens(row.tokens.get("student", {})),
            f"{row.cost_usd:.5f}", f"{row.list_cost_usd:.5f}",
            "" if row.cost_ratio is None else f"{row.cost_ratio:.2f} ({_ratio(row.list_cost_ratio)})",
            _ratio(row.cost_ratio_bound),
            f"{row.flops / 1e12:.2f}", _ratio(row.flops_ratio),
            "" if row.break_even_episodes is None else f"{row.break_even_episodes:.0f}", f"{row.wall_s:.1f}",
            " ".join("-" if q is None else f"{q:.0%}" for q in row.deferral_by_quarter))
    Console(width=220).print(out)
