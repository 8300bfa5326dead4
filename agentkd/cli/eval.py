"""`agentkd eval`: evaluate a policy on a split of the run's environment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agentkd.cli.common import (
    ApiBaseOption,
    BackendOption,
    MaxStepsOption,
    RayAddressOption,
    RpmOption,
    RunOption,
    SandboxOption,
    TpmOption,
    WorkersOption,
    backend_config,
    choice,
    exit_on_error,
    field_option,
    parse_price,
    rate_limit_config,
    sandbox_config,
)
from agentkd.cli.progress import RichProgress
from agentkd.evaluate.prices import StatedPrices
from agentkd.policies.names import POLICY_CHOICES
from agentkd.policies.settings import CascadeOptions, ICDSettings, StudentSettings

if TYPE_CHECKING:
    from agentkd.evaluate import EvalReport
    from agentkd.specs import PolicySpec

POLICY_HELP = ("teacher | student | icd (student + retrieved demos) | sc (student with self-consistent action "
               "generation) | cascade")
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", help="Any other setting of the policy (repeatable; a dotted KEY reaches its "
                                       "student or teacher), e.g. --set student.goal_weight=0.3.")]


def eval_command(
    run: RunOption,
    policy: Annotated[str, typer.Option("--policy", **choice(*POLICY_CHOICES), help=POLICY_HELP)],
    split: Annotated[str, typer.Option("--split", help="Task split to evaluate on.")] = "test",
    n: Annotated[Optional[int], typer.Option("--n", min=1, help="Number of tasks (default: the whole split).")] = None,
    unseen: Annotated[bool, typer.Option(
        "--unseen", help="Only tasks the run has not collected (a probe on train tasks for `agentkd collect "
                         "--on-failures NAME`).")] = False,
    student: str = field_option(StudentSettings, "model", "--student"),
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="Teacher (default: the run's teacher).")] = None,
    samples: int = field_option(CascadeOptions, "samples", scope="sc / cascade"),
    temperature: float = field_option(CascadeOptions, "temperature", scope="sc / cascade"),
    agreement: str = field_option(CascadeOptions, "agreement", scope="Cascade"),
    min_agree: Optional[int] = field_option(CascadeOptions, "min_agree", scope="Cascade"),
    k: int = field_option(ICDSettings, "k", scope="icd, and cascade with an untrained student"),
    online: bool = field_option(CascadeOptions, "online", scope="Cascade"),
    on_repeat: str = field_option(CascadeOptions, "on_repeat", scope="Cascade"),
    threshold: float = field_option(CascadeOptions, "threshold", scope="Cascade"),
    max_tokens: int = field_option(StudentSettings, "max_tokens", scope="Student"),
    max_steps: MaxStepsOption = None,
    history_steps: Optional[int] = field_option(StudentSettings, "history_steps", scope="Student"),
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, help="Episodes run at once (per worker with --backend ray).")] = 2,
    api_base: ApiBaseOption = None,
    student_api_base: Optional[str] = field_option(StudentSettings, "api_base", "--student-api-base"),
    teacher_price: Optional[str] = field_option(StatedPrices, "teacher", "--teacher-price", unset=True,
                                                metavar="IN,OUT[,CACHED[,WRITE]]"),
    student_price: Optional[str] = field_option(StatedPrices, "student", "--student-price", unset=True,
                                                metavar="IN,OUT[,CACHED[,WRITE]]"),
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Report name: RUN/eval/<name>.json (default: the policy, with -sft or -dpo appended for a "
                       "fine-tuned student).")] = None,
    settings: SetOption = None,
    calibrated: Annotated[Optional[str], typer.Option(
        "--calibrated", metavar="NAME", help="Evaluate the cascade `agentkd calibrate` wrote to "
                                             "RUN/calibration/<NAME>.json, as it is (its student, teacher and threshold; "
                                             "the policy options are not used).")] = None,
    sandbox: SandboxOption = None,
    backend: BackendOption = "local",
    ray_address: RayAddressOption = None,
    workers: WorkersOption = 2,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
) -> None:
    """Evaluate a policy on a split: writes RUN/eval/<name>.jsonl and RUN/eval/<name>.json.

    Example: agentkd eval --run runs/demo --policy cascade --student trained --n 20"""
    from agentkd.evaluate.job import EvalJob, default_eval_name, run_teacher_spec
    from agentkd.policies.names import parse_policy_name
    from agentkd.policies.registry import validate_policy_spec
    from agentkd.specs import PolicySpec, with_settings

    where = backend_config(backend, ray_address, workers)
    prices = {role: price for role, price in (("teacher", parse_price(teacher_price, "--teacher-price")),
                                              ("student", parse_price(student_price, "--student-price"))) if price}
    with exit_on_error():
        spec = parse_policy_name(policy, run_teacher_spec(run, teacher, api_base), student, samples=samples,
                                 temperature=temperature, agreement=agreement, min_agree=min_agree, online=online,
                                 on_repeat=on_repeat, threshold=threshold, k=k,
                                 max_tokens=max_tokens, history_steps=history_steps, api_base=student_api_base)
        if calibrated:
            spec = calibrated_spec(run, calibrated)
        if settings:
            spec = validate_policy_spec(PolicySpec(kind=spec.kind, settings=with_settings(spec.settings, settings)))
        job = EvalJob(run=run, policy=spec, name=name or default_eval_name(spec, run), split=split, n=n,
                      unseen=unseen, concurrency=concurrency, max_steps=max_steps, sandbox=sandbox_config(sandbox),
                      prices=prices, backend=where, rate_limit=rate_limit_config(rpm, tpm))
        report = job.execute(RichProgress())
    print_report(report)


def calibrated_spec(run: object, name: str) -> PolicySpec:
    """The cascade spec a calibration of the run recorded (CalibrationError naming what exists when there is none)."""
    from agentkd.calibrate import require_calibration

    return require_calibration(run, name).policy  # type: ignore[arg-type]


def print_report(r: EvalReport) -> None:
    table = Table(title=f"eval: {r.policy} on {r.split}", show_header=False)
    lo, hi = r.success_ci95
    table.add_row("episodes", str(r.episodes))
    table.add_row("success", f"{r.success_rate:.1%}  (95% CI {lo:.1%} to {hi:.1%})")
    table.add_row("errors / step-limit", f"{r.errors} / {r.step_limit}")
    table.add_row("mean steps", f"{r.mean_steps:.2f}")
    for role, u in r.per_episode_by_role.items():
        table.add_row(f"{role} per episode", f"{u.steps:.2f} steps, {u.prompt_tokens:.0f} ({u.cached_prompt_tokens:.0f} "
                      f"cached) + {u.completion_tokens:.0f} tokens, ${u.cost_usd:.5f} (list ${u.list_cost_usd:.5f}), "
                      f"{u.mean_step_latency_s:.2f} s/step")
    table.add_row("student share of steps", f"{r.student_share_of_steps:.1%}")
    if r.deferral_rate is not None:
        table.add_row("deferral rate", f"{r.deferral_rate:.1%}")
    table.add_row("$ per episode", f"${r.cost_per_episode_usd:.5f} cache-aware, ${r.list_cost_per_episode_usd:.5f} "
                                   "at list prices")
    versus = r.versus_teacher
    if versus is not None:
        table.add_row("x cheaper than the teacher", f"{times(versus.cheaper)} cache-aware, {times(versus.cheaper_at_list)}"
                                                     f" at list prices (teacher: {versus.basis})")
    for role, price in r.prices.items():
        counted = r.counted_by.get(role)
        table.add_row(f"{role} price", price.describe() + (f"; its tokens counted with {counted}, as a model would "
                                                           "read and write them" if counted else ""))
    table.add_row("mean episode latency", f"{r.mean_episode_latency_s:.2f} s")
    if r.break_even is not None:
        be = r.break_even
        table.add_row("break-even (episodes)", f"{be.episodes:.0f}" if be.episodes is not None else f"n/a: {be.note}")
    Console().print(table)


def times(ratio: float | None) -> str:
    """`3.1x`, or `—` when there is no ratio."""
    return "—" if ratio is None else f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"
