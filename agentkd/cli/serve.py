"""`agentkd serve ALIAS --port P` (llama.cpp's OpenAI-compatible server for a local GGUF model) and
`agentkd serve --student RUN` (a run's fine-tuned student: vLLM on a GPU, llama.cpp on a CPU), on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from agentkd.cli.common import choice, console, exit_on_error, fail, run_folder
from agentkd.models.llama.settings import DEFAULT_N_CTX


def serve_command(
    alias: Annotated[Optional[str], typer.Argument(
        help="An installed GGUF alias (see `agentkd models list`) or a path to a .gguf; or use --student.")] = None,
    student: Annotated[Optional[Path], typer.Option(
        "--student", callback=run_folder,
        help="Serve this run's fine-tuned student (RUN/student): vLLM when installed with CUDA, else "
             "llama.cpp on RUN/student/student.gguf (exported first when missing).")] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="--student: the model name clients use, hosted_vllm/NAME (default: <run folder>-student).")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", **choice("auto", "vllm", "llama.cpp"),
        help="--student: auto (vLLM when importable and CUDA is available, else llama.cpp) | vllm | "
             "llama.cpp.")] = "auto",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1.")] = 8080,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (default: $AGENTKD_LLAMA_THREADS or "
                                                                 "the door's default for this machine).")] = None,
    n_ctx: Annotated[Optional[int], typer.Option(
        "--n-ctx", min=256,
        help=f"Context window in tokens (default: $AGENTKD_LLAMA_CTX or {DEFAULT_N_CTX}; vLLM: the model's).")] = None,
) -> None:
    """Serve a GGUF model with llama.cpp's OpenAI-compatible server; then use
    `--teacher hosted_vllm/ALIAS --api-base http://127.0.0.1:PORT/v1`. With --student RUN, serve a run's trained
    student; then `agentkd eval --run RUN --student trained --student-api-base http://127.0.0.1:PORT/v1`. Ctrl-C stops it.

    This process becomes the server (exec), so its pid is the server's: stop it with `kill PID`.

    Example: agentkd serve qwen2.5-coder-1.5b --port 8092 --threads 1"""
    import os
    import sys

    if alias is None and student is None:
        fail("nothing to serve: give a GGUF model (`agentkd serve qwen2.5-coder-0.5b`; `agentkd models list` shows "
             "them) or a run's trained student (`agentkd serve --student RUN`)", code=2)
    if alias is not None and student is not None:
        fail("give a GGUF model (ALIAS) or --student RUN, not both", code=2)
    if student is None and (name is not None or backend != "auto"):
        fail("--name and --backend apply to --student RUN", code=2)
    if student is not None:
        from agentkd.train.serving import student_server

        with exit_on_error(), console.status(f"preparing the student of {student}..."):
            server = student_server(student, port, name=name, backend=backend, threads=threads, n_ctx=n_ctx)
        if server.exported:
            console.print(f"exported the student to {server.model} for llama.cpp")
        command, served, base = server.command, server.name, server.api_base
        console.print(f"serving the student of {student} with {server.backend} as [bold]{served}[/] on {base} "
                      f"(pid {os.getpid()}); use [bold]--student trained --student-api-base {base}[/] with "
                      f"`agentkd eval --run {student}`, or [bold]hosted_vllm/{served}[/] with api_base {base} from "
                      "any litellm client (Ctrl-C stops)", soft_wrap=True)
    else:
        from agentkd.models.llama.server import served_name, server_command

        with exit_on_error():
            command = server_command(alias, port, threads=threads, n_ctx=n_ctx)
        served = served_name(alias)
        console.print(f"serving [bold]{served}[/] on http://127.0.0.1:{port}/v1 (pid {os.getpid()}); use "
                      f"[bold]--teacher hosted_vllm/{served} --api-base http://127.0.0.1:{port}/v1[/] (Ctrl-C stops)")
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(command[0], command)
