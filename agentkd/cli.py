"""The `agentkd` command line."""

from __future__ import annotations

import asyncio
import platform
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="agentkd: distil LLM agents through their trajectories.")
console = Console(stderr=True)


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _sandbox_config(sandbox: Optional[str], **limits: float) -> object:
    """The sandbox settings from --sandbox; raises SandboxUnavailableError now if none can run."""
    from agentkd.tools.sandbox import PythonSandbox, SandboxConfig

    config = SandboxConfig(**limits, **({"isolation": sandbox} if sandbox else {}))
    PythonSandbox(config=config)
    return config


def _abort(progress: Progress, message: str, code: int = 1) -> None:
    """Stop a live progress display, then fail with `message` (so the error is not drawn over)."""
    progress.stop()
    _fail(message, code)


@app.callback()
def main() -> None:
    """Collect teacher trajectories, distil them into small students, evaluate."""


@app.command()
def collect(
    env: str = typer.Option(..., "--env", help="Environment: built-in name (factqa), path/to/env.py[:attr] or module:attr."),
    teacher: str = typer.Option(..., "--teacher", help="'reference' (the env's solver), a litellm model string, or a local alias (smollm2-135m)."),
    run: Path = typer.Option(..., "--run", help="Run folder, e.g. runs/factqa-ref. Re-running the same command resumes."),
    split: str = typer.Option("train", "--split", help="Task split to run."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Number of tasks (default: the whole split)."),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="Episodes run at once."),
    samples_per_task: int = typer.Option(1, "--samples-per-task", min=1, help="Episodes per task."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="Teacher sampling temperature."),
    max_tokens: int = typer.Option(512, "--max-tokens", min=1, help="Max tokens per teacher step."),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="Base URL of an OpenAI-compatible server."),
    first_thought: Optional[str] = typer.Option(None, "--first-thought", help="Forced beginning of the teacher's first thought."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Override the env's step limit."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="Isolation of model-written code: auto (bubblewrap, refuse if missing) | bwrap | none (no isolation; only for trusted models). Default: $AGENTKD_SANDBOX or auto."),
    exec_timeout: float = typer.Option(30.0, "--exec-timeout", min=0.1, help="Wall-clock seconds per code execution."),
) -> None:
    """Run a teacher over a split and append its trajectories to RUN/trajectories.jsonl."""
    from agentkd import __version__
    from agentkd.collect import RunFolder, collect as run_collect
    from agentkd.env.loading import load_environment
    from agentkd.errors import AgentKDError, ModelError
    from agentkd.models.client import ModelClient
    from agentkd.policies import LLMPolicy, ReferencePolicy

    try:
        sandbox_config = _sandbox_config(sandbox, timeout_s=exec_timeout)  # refuses before any episode
        environment = load_environment(env)
        tasks = environment.tasks(split, n)
        if teacher == "reference":
            if environment.reference_solver is None:
                _fail(f"environment {environment.name!r} has no reference solver; pass a model as --teacher")
            policy = ReferencePolicy()
        else:
            client = ModelClient(teacher, temperature=temperature, max_tokens=max_tokens, api_base=api_base)
            policy = LLMPolicy(client, role="teacher", first_thought=first_thought)
        folder = RunFolder(run)
        folder.start(
            identity={"command": "collect", "env": env, "env_version": environment.version, "teacher": teacher, "split": split},
            details={
                "n": n, "concurrency": concurrency, "samples_per_task": samples_per_task, "temperature": temperature,
                "max_tokens": max_tokens, "api_base": api_base, "first_thought": first_thought, "max_steps": max_steps,
                "sandbox": sandbox_config.isolation, "exec_timeout": exec_timeout,
                "env": environment.describe(), "versions": _versions(__version__),
            },
        )
    except (AgentKDError, ValueError) as exc:
        _fail(str(exc))
        return

    progress = Progress(
        TextColumn("[bold]collect[/]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("success {task.fields[success]:.0%}  ${task.fields[cost]:.4f}  errors {task.fields[errors]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )
    total = len(tasks) * samples_per_task
    with progress:
        bar = progress.add_task("collect", total=total, success=0.0, cost=0.0, errors=0)

        def update(_traj: object, stats: object) -> None:
            progress.update(bar, completed=stats.skipped + stats.done, success=stats.success_rate,  # type: ignore[attr-defined]
                            cost=stats.cost_usd, errors=stats.errors)  # type: ignore[attr-defined]

        try:
            stats = asyncio.run(run_collect(
                environment, policy, tasks, folder, concurrency=concurrency, samples_per_task=samples_per_task,
                on_trajectory=update, agent_kwargs={"max_steps": max_steps, "sandbox": sandbox_config},
            ))
        except ModelError as exc:
            _abort(progress, f"{exc}\nTrajectories written so far are kept in {folder.trajectories_path}; fix the problem and re-run to resume.")
        except AgentKDError as exc:
            _abort(progress, str(exc))
        except KeyboardInterrupt:
            _abort(progress, "interrupted; finished trajectories are kept. Re-run the same command to resume.", code=130)
        progress.update(bar, completed=total)
    _print_collect_summary(stats, folder)


@app.command()
def index(
    run: Path = typer.Option(..., "--run", help="Run folder made by `agentkd collect`."),
    embedder: Optional[str] = typer.Option(None, "--embedder", help="A litellm embedding model (default: the packaged all-MiniLM-L6-v2)."),
    window: int = typer.Option(1, "--window", min=0, help="Earlier steps shown with each demonstration."),
    hnsw_threshold: int = typer.Option(20_000, "--hnsw-threshold", min=1, help="Records from which HNSW replaces the exact flat index."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Start a new store instead of adding to the existing one."),
) -> None:
    """Build (or extend) RUN/index: a FAISS store of the run's successful teacher steps."""

    from agentkd.agent.cascaded import INDEX_DIR
    from agentkd.collect import RunFolder
    from agentkd.store import DemoStore, LiteLLMEmbedder
    from agentkd.errors import AgentKDError

    folder = RunFolder(run)
    target = run / INDEX_DIR
    try:
        folder.identity()
        trajectories = list(folder.iter_trajectories())
        chosen = LiteLLMEmbedder(embedder) if embedder else None
        exists = (target / "meta.json").is_file() and not rebuild
        with console.status("loading the embedder and the store..."):
            store = DemoStore.load(target, chosen) if exists else DemoStore(chosen, hnsw_threshold, window)
        started = time.perf_counter()
        with console.status(f"embedding the teacher steps of {len(trajectories)} trajectories..."):
            added = store.add_trajectories(trajectories)
        if not len(store):
            _fail(f"{run} has no successful teacher trajectory to index; collect some first")
        store.save(target)
    except AgentKDError as exc:
        _fail(str(exc))
        return
    meta = store.meta
    console.print(f"indexed {added} new steps in {time.perf_counter() - started:.1f} s: {meta['count']} records, "
                  f"{meta['index']} index, {meta['embedder']} ({meta['dimension']} dims) in {target}")


@app.command()
def train(
    run: Path = typer.Option(..., "--run", help="Run folder made by `agentkd collect`; the student is written to RUN/student/."),
    student: Optional[str] = typer.Option(None, "--student", help="Base student: local alias (smollm2-135m) or a Hugging Face model folder. Default: smollm2-135m."),
    epochs: Optional[float] = typer.Option(None, "--epochs", min=0.01, help="Passes over the data (default 2)."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Peak learning rate (default 1e-3, cosine schedule)."),
    lora_r: Optional[int] = typer.Option(None, "--lora-r", min=0, help="LoRA rank (default 32); 0 = full fine-tuning."),
    max_trajectories: Optional[int] = typer.Option(None, "--max-trajectories", min=1, help="Train on at most this many filtered trajectories."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with training settings (keys of agentkd.TrainConfig); options given here override it."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in RUN/student/checkpoints."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing RUN/student and train again."),
) -> None:
    """Fine-tune a student on RUN's filtered trajectories (TRL SFTTrainer + LoRA; CUDA bf16 when present)."""
    from agentkd.collect import RunFolder
    from agentkd.env.loading import load_environment
    from agentkd.errors import AgentKDError
    from agentkd.train import resolve_config, train_student

    try:
        identity = RunFolder(run).identity()
        environment = load_environment(identity["env"])
        settings = resolve_config(config, student=student, epochs=epochs, lr=lr, lora_r=lora_r,
                                  max_trajectories=max_trajectories)
    except AgentKDError as exc:
        _fail(str(exc))
        return

    progress = Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)

    def show_data(report: object, examples: list) -> None:
        console.print(f"filters: {report.summary()}")  # type: ignore[attr-defined]
        tokens = sum(len(e.input_ids) for e in examples)
        console.print(f"SFT data: {len(examples)} conversations, {tokens} tokens "
                      f"({sum(e.trained_tokens for e in examples)} assistant tokens trained on)")

    with progress:
        bar = progress.add_task("train", total=None, loss="-")

        def update(step: int, total: int, logs: dict) -> None:
            loss = f"{logs['loss']:.3f}" if "loss" in logs else "-"
            progress.update(bar, completed=step, total=total, loss=loss)

        try:
            result = train_student(run, environment, settings, resume=resume, overwrite=overwrite,
                                   on_progress=update, on_data=show_data)
        except AgentKDError as exc:
            _abort(progress, str(exc))
        except KeyboardInterrupt:
            _abort(progress, f"interrupted; continue from the last checkpoint with `agentkd train --run {run} --resume`", code=130)
    loss = f"{result.final_loss:.3f}" if result.final_loss is not None else "n/a"
    console.print(f"trained on {result.examples} conversations in {result.seconds:.0f} s "
                  f"({result.tokens_per_s:.0f} tokens/s), final loss {loss}")
    console.print(f"student: {result.merged_dir} (use it with --student {result.merged_dir} or --student trained)")


def _parse_price(text: Optional[str], option: str) -> Optional[tuple[float, float]]:
    if text is None:
        return None
    try:
        prompt, completion = (float(x) for x in text.split(","))
    except ValueError:
        _fail(f"{option} takes two numbers, $ per 1M prompt and completion tokens, e.g. 0.15,0.60")
    return (prompt, completion)


POLICIES = ("teacher", "student", "icd", "sc", "cascade")


def build_eval_policy(
    run: Path, policy: str, student: str = "smollm2-135m", teacher: Optional[str] = None, samples: int = 3,
    temperature: float = 0.7, agreement: str = "code", min_agree: Optional[int] = None, k: int = 4,
    online: bool = False, max_tokens: int = 256, api_base: Optional[str] = None,
) -> tuple[object, dict, bool]:
    """(policy, settings recorded with the evaluation, student is agentkd-trained) for `agentkd eval`."""
    from agentkd.agent.cascaded import load_store
    from agentkd.collect import RunFolder
    from agentkd.models.client import ModelClient
    from agentkd.policies import make_policy
    from agentkd.policies.cascade import CascadePolicy
    from agentkd.policies.icd import StudentPolicy
    from agentkd.policies.self_consistent import SelfConsistentPolicy
    from agentkd.train import resolve_student

    identity = RunFolder(run).identity()
    teacher_spec = teacher or identity["teacher"]
    settings: dict = {"policy": policy, "teacher": teacher_spec}
    if policy == "teacher":
        return make_policy(teacher_spec, api_base=api_base), settings, False
    model, trained = resolve_student(run, student)
    # A fine-tuned student acts without demonstrations, with the short prompt it was trained on.
    store = load_store(run) if policy == "icd" or (policy == "cascade" and not trained) else None
    base = StudentPolicy(ModelClient(model, max_tokens=max_tokens), store, k=k, student_prompt=trained)
    settings.update(student=model, trained_student=trained, max_tokens=max_tokens)
    if store is not None:
        settings.update(k=k)
    if policy in ("sc", "cascade"):
        settings.update(samples=samples, temperature=temperature)
    if policy == "sc":
        return SelfConsistentPolicy(base, n=samples, temperature=temperature), settings, trained
    if policy == "cascade":
        settings.update(agreement=agreement, min_agree=min_agree, online=online)
        return CascadePolicy(base, make_policy(teacher_spec, api_base=api_base), n=samples, temperature=temperature,
                             agreement=agreement, min_agree=min_agree, online=online), settings, trained  # type: ignore[arg-type]
    return base, settings, trained


@app.command("eval")
def eval_command(
    run: Path = typer.Option(..., "--run", help="Run folder made by `agentkd collect` (and `agentkd index` for icd/cascade)."),
    policy: str = typer.Option(..., "--policy", help="teacher | student | icd (student + retrieved demos) | sc (student with self-consistent action generation) | cascade"),
    split: str = typer.Option("test", "--split", help="Task split to evaluate on."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Number of tasks (default: the whole split)."),
    student: str = typer.Option("smollm2-135m", "--student", help="Student model: local alias, a model folder, hf/<folder>, a litellm string, or 'trained' (RUN/student/merged from `agentkd train`)."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher (default: the run's teacher)."),
    samples: int = typer.Option(3, "--samples", min=1, help="sc / cascade: student samples per step."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0, help="sc / cascade: student sampling temperature."),
    agreement: str = typer.Option("code", "--agreement", help="Cascade: code | result | majority."),
    min_agree: Optional[int] = typer.Option(None, "--min-agree", min=1, help="Cascade: samples that must agree (default: all; majority: more than half)."),
    k: int = typer.Option(4, "--k", min=1, help="Demonstrations retrieved per step (icd, and cascade with an untrained student)."),
    online: bool = typer.Option(False, "--online", help="Cascade: add the teacher's deferred steps to the store as they happen."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="Max tokens per student step."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Override the env's step limit."),
    concurrency: int = typer.Option(2, "--concurrency", min=1, help="Episodes run at once."),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="Base URL for an OpenAI-compatible teacher server."),
    teacher_price: Optional[str] = typer.Option(None, "--teacher-price", help="$ per 1M prompt,completion tokens for the teacher (for break-even with unpriced teachers)."),
    student_price: Optional[str] = typer.Option(None, "--student-price", help="$ per 1M prompt,completion tokens for the student."),
    name: Optional[str] = typer.Option(None, "--name", help="Report name: RUN/eval/<name>.json (default: the policy, with -sft appended for a trained student)."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="auto | bwrap | none (default: $AGENTKD_SANDBOX or auto)."),
) -> None:
    """Evaluate a policy on a split: writes RUN/eval/<name>.jsonl and RUN/eval/<name>.json."""
    from agentkd.collect import RunFolder
    from agentkd.env.loading import load_environment
    from agentkd.errors import AgentKDError
    from agentkd.evaluate import evaluate

    if policy not in POLICIES:
        _fail(f"unknown policy {policy!r}; choose {', '.join(POLICIES)}", code=2)
    prices = {role: price for role, price in (("teacher", _parse_price(teacher_price, "--teacher-price")),
                                              ("student", _parse_price(student_price, "--student-price"))) if price}
    try:
        environment = load_environment(RunFolder(run).identity()["env"])
        tasks = environment.tasks(split, n)
        chosen, settings, trained = build_eval_policy(
            run, policy, student=student, teacher=teacher, samples=samples, temperature=temperature,
            agreement=agreement, min_agree=min_agree, k=k, online=online, max_tokens=max_tokens, api_base=api_base)
        sandbox_config = _sandbox_config(sandbox)
        settings.update(split=split, max_steps=max_steps)
    except (AgentKDError, ValueError) as exc:
        _fail(str(exc))
        return
    report_name = name or (f"{policy}-sft" if trained else policy)

    progress = Progress(TextColumn(f"[bold]eval {report_name}[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("success {task.fields[success]:.0%}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console)
    with progress:
        bar = progress.add_task("eval", total=len(tasks), success=0.0)

        def update(_traj: object, stats: object) -> None:
            progress.update(bar, completed=stats.skipped + stats.done, success=stats.success_rate)  # type: ignore[attr-defined]

        try:
            report = asyncio.run(evaluate(
                environment, chosen, tasks, run, report_name, split, settings, concurrency=concurrency, prices=prices,
                agent_kwargs={"max_steps": max_steps, "sandbox": sandbox_config}, on_trajectory=update,
            ))
        except AgentKDError as exc:
            _abort(progress, f"{exc}\nFinished episodes are kept in {run}/eval/{report_name}.jsonl; re-run to resume.")
        progress.update(bar, completed=len(tasks))
    _print_eval_report(report)


def _print_eval_report(report: object) -> None:
    r = report  # type: ignore[assignment]
    table = Table(title=f"eval: {r.policy} on {r.split}", show_header=False)  # type: ignore[attr-defined]
    lo, hi = r.success_ci95  # type: ignore[attr-defined]
    table.add_row("episodes", str(r.episodes))  # type: ignore[attr-defined]
    table.add_row("success", f"{r.success_rate:.1%}  (95% CI {lo:.1%} to {hi:.1%})")  # type: ignore[attr-defined]
    table.add_row("errors / step-limit", f"{r.errors} / {r.step_limit}")  # type: ignore[attr-defined]
    table.add_row("mean steps", f"{r.mean_steps:.2f}")  # type: ignore[attr-defined]
    for role, u in r.per_episode_by_role.items():  # type: ignore[attr-defined]
        table.add_row(f"{role} per episode", f"{u.steps:.2f} steps, {u.prompt_tokens:.0f}+{u.completion_tokens:.0f} tokens, "
                      f"${u.cost_usd:.5f}, {u.mean_step_latency_s:.2f} s/step")
    table.add_row("student share of steps", f"{r.student_share_of_steps:.1%}")  # type: ignore[attr-defined]
    if r.deferral_rate is not None:  # type: ignore[attr-defined]
        table.add_row("deferral rate", f"{r.deferral_rate:.1%}")  # type: ignore[attr-defined]
    table.add_row("cost per episode", f"${r.cost_per_episode_usd:.5f}")  # type: ignore[attr-defined]
    table.add_row("mean episode latency", f"{r.mean_episode_latency_s:.2f} s")  # type: ignore[attr-defined]
    if r.break_even is not None:  # type: ignore[attr-defined]
        be = r.break_even  # type: ignore[attr-defined]
        table.add_row("break-even (episodes)", f"{be.episodes:.0f}" if be.episodes is not None else f"n/a: {be.note}")
    Console().print(table)


def _versions(agentkd_version: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"agentkd": agentkd_version, "python": platform.python_version()}
    for pkg in ("litellm", "langgraph", "transformers", "torch", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _print_collect_summary(stats: object, folder: object) -> None:
    table = Table(title="collection", show_header=False)
    s = stats  # type: ignore[assignment]
    table.add_row("episodes in run", str(s.skipped + s.done))  # type: ignore[attr-defined]
    table.add_row("new this time", str(s.done))  # type: ignore[attr-defined]
    table.add_row("resumed (skipped)", str(s.skipped))  # type: ignore[attr-defined]
    table.add_row("success (new)", f"{s.success_rate:.1%}")  # type: ignore[attr-defined]
    table.add_row("errors / step-limit", f"{s.errors} / {s.step_limit}")  # type: ignore[attr-defined]
    table.add_row("mean steps (new)", f"{s.steps / s.done:.2f}" if s.done else "-")  # type: ignore[attr-defined]
    table.add_row("cost (new)", f"${s.cost_usd:.4f}")  # type: ignore[attr-defined]
    table.add_row("trajectories", str(folder.trajectories_path))  # type: ignore[attr-defined]
    Console().print(table)
    for msg in s.error_messages:  # type: ignore[attr-defined]
        console.print(f"[yellow]episode error[/] {msg}")


@app.command()
def pipeline(
    run: Path = typer.Option(Path("runs/demo"), "--run", help="Run folder for every stage. Re-running resumes finished stages."),
    env: str = typer.Option("factqa", "--env", help="Environment (must have a reference solver when --teacher is reference)."),
    teacher: str = typer.Option("reference", "--teacher", help="Teacher: reference or a litellm model string."),
    train_tasks: int = typer.Option(50, "--train-tasks", min=1, help="Teacher episodes collected and trained on."),
    epochs: float = typer.Option(2.0, "--epochs", min=0.01, help="Training epochs."),
    eval_tasks: int = typer.Option(10, "--eval-tasks", min=1, help="Held-out test tasks per evaluated policy."),
    samples: int = typer.Option(3, "--samples", min=1, help="Cascade: student samples per step."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Step limit of evaluated episodes (default: the env's)."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="auto | bwrap | none (default: $AGENTKD_SANDBOX or auto)."),
) -> None:
    """The main job end to end: collect → index → train → eval teacher, fine-tuned student and cascade; one table."""
    from agentkd.pipeline import PipelineError, PipelineSettings, results, run_stage, stages

    settings = PipelineSettings(env=env, teacher=teacher, train_tasks=train_tasks, epochs=epochs,
                                eval_tasks=eval_tasks, samples=samples, max_steps=max_steps, sandbox=sandbox)
    planned = stages(run, settings)
    started = time.perf_counter()
    try:
        for number, stage in enumerate(planned, 1):
            run_stage(stage, number, len(planned), echo=console.print)
    except PipelineError as exc:
        _fail(str(exc))
    table = Table(title=f"agentkd pipeline: {env}, {eval_tasks} held-out test tasks ({time.perf_counter() - started:.0f} s)")
    for column in ("policy", "success (95% CI)", "mean steps", "student share of steps", "teacher share of steps",
                   "s / episode"):
        table.add_column(column)
    for row in results(run, planned):
        lo, hi = row["success_ci95"]  # type: ignore[misc]
        share = float(row["student_share_of_steps"])  # type: ignore[arg-type]
        table.add_row(str(row["policy"]), f"{row['success_rate']:.0%} ({lo:.0%}–{hi:.0%})", f"{row['mean_steps']:.2f}",
                      f"{share:.0%}", f"{1 - share:.0%}", f"{row['mean_episode_latency_s']:.1f}")
    out = Console()
    Console(width=max(out.width, 120)).print(table)  # never wrap the one table that matters into a column soup
    console.print(f"reports: {run}/eval/*.json; trajectories: {run}/eval/*.jsonl; student: {run}/student/merged")


@app.command("check-env")
def check_env_command(
    env: str = typer.Argument(..., help="Environment: built-in name (factqa), path/to/env.py[:attr] or module:attr."),
    n: int = typer.Option(5, "--n", min=1, help="Tasks per split the reference solver is run on."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="auto | bwrap | none (default: $AGENTKD_SANDBOX or auto)."),
) -> None:
    """Check an environment: it loads, its parts are valid, its reference solver passes and a wrong answer fails."""
    from agentkd.check_env import check_environment
    from agentkd.errors import AgentKDError

    try:
        sandbox_config = _sandbox_config(sandbox)
    except (AgentKDError, ValueError) as exc:
        _fail(str(exc))
        return
    report = check_environment(env, n=n, sandbox=sandbox_config)  # type: ignore[arg-type]
    if not report.loaded:
        _fail(f"cannot load environment {env!r}: {report.checks[0].detail}")
    table = Table(title=f"check-env: {env}")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[bold red]FAIL[/]", check.detail)
    Console().print(table)
    if not report.ok:
        _fail(f"{len(report.failed)} of {len(report.checks)} checks failed: {', '.join(c.name for c in report.failed)}")
    console.print(f"[bold green]all {len(report.checks)} checks passed[/]")


if __name__ == "__main__":
    sys.exit(app())
