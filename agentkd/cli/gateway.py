"""`agentkd gateway --teacher MODEL --run RUN`: an OpenAI-compatible endpoint that answers with the teacher and
records every conversation as an episode of RUN."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from agentkd.cli.common import ApiBaseOption, console, exit_on_error, parse_price, run_folder

KEY_VARIABLE = "AGENTKD_GATEWAY_API_KEY"
"""Environment variable read for the gateway's own key when --api-key is not given (keeps it out of `ps`)."""


def gateway_command(
    teacher: Annotated[str, typer.Option(
        "--teacher", help="The model that answers: a litellm model string (openai/gpt-4o-mini, hosted_vllm/NAME "
                          "with --api-base) or a local alias. Its API key comes from the provider's usual "
                          "environment variable and is never written anywhere.")],
    run: Annotated[Path, typer.Option(
        "--run", callback=run_folder, help="Run folder the episodes are recorded in (created when missing; "
                                           "restarting the gateway on it continues its episodes).")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8300,
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind: 127.0.0.1 serves this machine only; 0.0.0.0 serves every network "
                       "(give --api-key then).")] = "127.0.0.1",
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", help=f"Refuse (401) requests without 'Authorization: Bearer KEY'. Default: ${KEY_VARIABLE} "
                          "when set, else no key.")] = None,
    api_base: ApiBaseOption = None,
    teacher_price: Annotated[Optional[str], typer.Option(
        "--teacher-price", help="The teacher's $ per 1M prompt,completion[,cached-read[,cache-write]] tokens, e.g. "
                                "3,15,0.3 (default: litellm's cost map, else the stated default pair).")] = None,
    max_body_mb: Annotated[float, typer.Option(
        "--max-body-mb", min=0.01, help="Larger request bodies are refused with 413.")] = 8.0,
    success_threshold: Annotated[float, typer.Option(
        "--success-threshold", min=0.0, max=1.0,
        help="Feedback without an explicit success counts as one when its score is at least this.")] = 0.5,
) -> None:
    """Serve an OpenAI-compatible /v1/chat/completions that answers with the teacher and records each conversation
    as an episode of RUN (one step per request); POST /v1/feedback grades an episode. SIGTERM or Ctrl-C lets
    requests in flight finish.

    Example: agentkd gateway --teacher openai/gpt-4o-mini --run runs/my-agent --port 8300"""
    from agentkd.gateway.settings import GatewaySettings

    key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE) or None
    if host not in ("127.0.0.1", "localhost", "::1") and key is None:
        console.print(f"[yellow]warning:[/] serving on {host} without --api-key: anyone who reaches this port "
                      "spends the teacher's budget", soft_wrap=True)
    with exit_on_error():
        settings = GatewaySettings(teacher=teacher, run=run, host=host, port=port, api_key=key, api_base=api_base,
                                   teacher_price=parse_price(teacher_price, "--teacher-price"),
                                   max_body_bytes=int(max_body_mb * 1024 * 1024), success_threshold=success_threshold)
        from agentkd.gateway.server import serve

        def ready(gateway: Any, loaded: int) -> None:
            resumed = f", continuing {loaded} recorded episodes" if loaded else ""
            console.print(f"agentkd gateway: teacher [bold]{gateway.client.model}[/] on "
                          f"[bold]http://{host}:{port}/v1[/] (pid {os.getpid()}), recording into {run}{resumed}; "
                          f"{'requests need the API key; ' if key else ''}SIGTERM or Ctrl-C stops", soft_wrap=True)

        try:
            serve(settings, on_ready=ready)
        except KeyboardInterrupt:
            pass
