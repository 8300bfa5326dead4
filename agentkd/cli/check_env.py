"""`agentkd check-env`: load an environment, validate it, run its reference solver and a wrong answer."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentkd.cli.common import EnvArgOption, SandboxOption, console, exit_on_error, fail, sandbox_config


def check_env_command(
    env: Annotated[str, typer.Argument(help="Environment: built-in name (factqa, mathcode, apiworld, household), "
                                            "path/to/env.py[:attr] or module:attr.")],
    env_arg: EnvArgOption = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Tasks per split the reference solver is run on.")] = 5,
    sandbox: SandboxOption = None,
) -> None:
    """Check an environment: it loads, its parts are valid, its reference solver passes and a wrong answer fails.
    Every check runs even when an earlier one fails.

    Example: agentkd check-env myenv.py"""
    from agentkd.agent.env_check import check_environment
    from agentkd.sandbox.host import PythonSandbox
    from agentkd.specs import EnvSpec, parse_env_args

    with exit_on_error():
        spec = EnvSpec(target=env, kwargs=parse_env_args(env_arg), given=env)
        config = sandbox_config(sandbox)
        PythonSandbox(config=config)
    report = check_environment(spec, n=n, sandbox=config)
    if not report.loaded:
        fail(f"cannot load environment {env!r}: {report.checks[0].detail}")
    table = Table(title=f"check-env: {env}")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        result = ("[yellow]skipped[/]" if check.skipped else "[bold red]FAIL[/]" if not check.ok
                  else "[green]ok[/] [yellow](warning below)[/]" if check.warning else "[green]ok[/]")
        table.add_row(check.name, result, escape(check.detail))
    Console().print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if not report.ok:
        skipped = f"; {len(report.skipped)} skipped ({', '.join(c.name for c in report.skipped)})" \
            if report.skipped else ""
        fail(f"{len(report.failed)} of {len(report.checks)} checks failed: "
             f"{', '.join(c.name for c in report.failed)}{skipped}")
    console.print(f"[bold green]all {len(report.checks)} checks passed[/]"
                  + (f" ({len(report.warnings)} warning{'s' * (len(report.warnings) > 1)} above)"
                     if report.warnings else ""))
