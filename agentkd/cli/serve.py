"""`agentkd serve ALIAS --port P`: llama.cpp's OpenAI-compatible server for a local GGUF model on 127.0.0.1."""

from __future__ import annotations

from typing import Annotated

import typer

from agentkd.cli.common import console, exit_on_error, fail


def serve_command(
    alias: Annotated[str, typer.Argument(help="An installed GGUF alias (see `agentkd models list`) or a path to a .gguf.")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1.")] = 8080,
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads (default: $AGENTKD_LLAMA_THREADS or "
                                                                 "the door's default for this machine).")] = 0,
    n_ctx: Annotated[int, typer.Option("--n-ctx", min=256, help="Context window in tokens.")] = 0,
) -> None:
    """Serve a GGUF model with llama.cpp's OpenAI-compatible server; then use
    `--teacher hosted_vllm/ALIAS --api-base http://127.0.0.1:PORT/v1`. Ctrl-C stops it."""
    import os
    import subprocess

    from agentkd.models.serve import server_command

    with exit_on_error():
        command = server_command(alias, port, threads=threads or None, n_ctx=n_ctx or None)
    name = alias if not alias.endswith(".gguf") else os.path.basename(alias)
    console.print(f"serving [bold]{name}[/] on http://127.0.0.1:{port}/v1 — use "
                  f"[bold]--teacher hosted_vllm/{name} --api-base http://127.0.0.1:{port}/v1[/] (Ctrl-C stops)")
    process = subprocess.Popen(command)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=30)
        raise typer.Exit(130) from None
    if code:
        fail(f"the llama.cpp server exited with status {code}", code)
