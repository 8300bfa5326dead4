"""`agentkd serve ALIAS --port P`: llama.cpp's OpenAI-compatible server for a local GGUF model on 127.0.0.1."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from agentkd.cli.common import console, exit_on_error


def serve_command(
    alias: Annotated[str, typer.Argument(help="An installed GGUF alias (see `agentkd models list`) or a path to a .gguf.")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1.")] = 8080,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (default: $AGENTKD_LLAMA_THREADS or "
                                                                 "the door's default for this machine).")] = None,
    n_ctx: Annotated[Optional[int], typer.Option(
        "--n-ctx", min=256, help="Context window in tokens (default: $AGENTKD_LLAMA_CTX or 8192).")] = None,
) -> None:
    """Serve a GGUF model with llama.cpp's OpenAI-compatible server; then use
    `--teacher hosted_vllm/ALIAS --api-base http://127.0.0.1:PORT/v1`. Ctrl-C stops it.

    This process becomes the server (exec), so its pid is the server's: stop it with `kill PID`."""
    import os
    import sys

    from agentkd.models.serve import server_command, served_name

    with exit_on_error():
        command = server_command(alias, port, threads=threads, n_ctx=n_ctx)
    name = served_name(alias)
    console.print(f"serving [bold]{name}[/] on http://127.0.0.1:{port}/v1 (pid {os.getpid()}); use "
                  f"[bold]--teacher hosted_vllm/{name} --api-base http://127.0.0.1:{port}/v1[/] (Ctrl-C stops)")
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(command[0], command)
