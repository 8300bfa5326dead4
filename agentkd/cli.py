"""The `agentkd` command line."""

from __future__ import annotations

import asyncio
import platform
import sys
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
    from agentkd.tools.sandbox import PythonSandbox, SandboxConfig

    try:
        sandbox_config = SandboxConfig(timeout_s=exec_timeout, **({"isolation": sandbox} if sandbox else {}))
        PythonSandbox(config=sandbox_config)  # refuses now, before any episode, if there is no sandbox
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
            progress.stop()
            _fail(f"{exc}\nTrajectories written so far are kept in {folder.trajectories_path}; fix the problem and re-run to resume.")
            return
        except AgentKDError as exc:
            progress.stop()
            _fail(str(exc))
            return
        except KeyboardInterrupt:
            progress.stop()
            _fail("interrupted; finished trajectories are kept. Re-run the same command to resume.", code=130)
            return
        progress.update(bar, completed=total)
    _print_collect_summary(stats, folder)


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


if __name__ == "__main__":
    sys.exit(app())
