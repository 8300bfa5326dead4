"""`agentkd gateway --teacher MODEL --run RUN`: an OpenAI-compatible endpoint that answers with the teacher and
records every conversation as an episode of RUN; `agentkd gateway --cascade RUN --student MODEL`: the same endpoint
answered by the student, which defers to the teacher when unsure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from agentkd.cli.common import ApiBaseOption, console, exit_on_error, field_option, parse_price, run_folder
from agentkd.gateway.settings import CascadeGatewaySettings

KEY_VARIABLE = "AGENTKD_GATEWAY_API_KEY"
"""Environment variable read for the gateway's own key when --api-key is not given (keeps it out of `ps`)."""


def gateway_command(
    teacher: Annotated[Optional[str], typer.Option(
        "--teacher", help="The model that answers: a litellm model string (openai/gpt-4o-mini, hosted_vllm/NAME "
                          "with --api-base) or a local GGUF model (gguf/qwen2.5-coder-1.5b: run in this process, tool calls "
                          "read from its chat template's format). Its API key comes from the provider's usual "
                          "environment variable and is never written anywhere. With --cascade: the model the "
                          "student defers to (default: the teacher RUN recorded, with its --api-base).")] = None,
    run: Annotated[Optional[Path], typer.Option(
        "--run", callback=run_folder, help="Run folder the episodes are recorded in (created when missing; "
                                           "restarting the gateway on it continues its episodes).")] = None,
    cascade: Annotated[Optional[Path], typer.Option(
        "--cascade", callback=run_folder, help="Answer with the cascade over this run's demonstration store "
                                               "(RUN/index) instead; episodes are recorded in "
                                               "RUN/eval/gateway-cascade.jsonl. Needs --student.")] = None,
    student: Annotated[Optional[str], typer.Option(
        "--student", help="With --cascade: the student, a GGUF model run in this process (gguf/qwen2.5-coder-0.5b, "
                          "an alias, or a .gguf path).")] = None,
    threshold: float = field_option(CascadeGatewaySettings, "threshold", scope="With --cascade"),
    calibrated: Annotated[bool, typer.Option(
        "--calibrated", help="With --cascade: use the threshold `agentkd calibrate --run RUN --traffic` chose from "
                             "RUN's graded gateway episodes (instead of --threshold).")] = False,
    online: Annotated[bool, typer.Option(
        "--online", help="With --cascade: the teacher's answers join RUN's demonstration store as they come "
                         "(saved to RUN/index on exit).")] = False,
    via_litellm: Annotated[bool, typer.Option(
        "--via-litellm", help="Send requests for an openai/ or hosted_vllm/ teacher with --api-base through litellm "
                              "too (default: posted straight to that server, which costs less per request).")] = False,
    demos: int = field_option(CascadeGatewaySettings, "k", "--demos", scope="With --cascade"),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8300,
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind: 127.0.0.1 serves this machine only; 0.0.0.0 serves every network "
                       "(give --api-key then).")] = "127.0.0.1",
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", help=f"Refuse (401) requests without 'Authorization: Bearer KEY'. Default: ${KEY_VARIABLE} "
                          "when set, else no key.")] = None,
    api_base: ApiBaseOption = None,
    teacher_price: Annotated[Optional[str], typer.Option(
        "--teacher-price", help="The teacher's $ per 1M prompt,completion and optionally cached-read and cache-write "
                                "tokens, e.g. 3,15,0.3 (default: litellm's cost map, else the stated default "
                                "pair).")] = None,
    max_body_mb: Annotated[float, typer.Option(
        "--max-body-mb", min=0.01, help="Larger request bodies are refused with 413.")] = 8.0,
    success_threshold: Annotated[float, typer.Option(
        "--success-threshold", min=0.0, max=1.0,
        help="Feedback without an explicit success counts as one when its score is at least this.")] = 0.5,
) -> None:
    """Serve an OpenAI-compatible /v1/chat/completions that answers with the teacher and records each conversation
    as an episode of RUN (one step per request); POST /v1/feedback grades an episode. SIGTERM or Ctrl-C lets
    requests in flight finish.

    Example: agentkd gateway --teacher openai/gpt-4o-mini --run runs/my-agent --port 8300

    With --cascade RUN --student MODEL, the student answers each request with demonstrations retrieved from RUN's
    store, and the teacher answers when the student's confidence is below --threshold."""
    from agentkd.gateway.settings import CascadeGatewaySettings, GatewaySettings

    if (run is None) == (cascade is None):
        raise typer.BadParameter("give --run RUN (the teacher answers) or --cascade RUN --student MODEL (the "
                                 "cascade answers), one of them", param_hint="--run / --cascade")
    if cascade is not None and student is None:
        raise typer.BadParameter("--cascade needs --student MODEL (a GGUF model, e.g. gguf/qwen2.5-coder-0.5b)",
                                 param_hint="--student")
    if cascade is None and student is not None:
        raise typer.BadParameter("--student is for --cascade RUN", param_hint="--student")
    if calibrated:
        if cascade is None:
            raise typer.BadParameter("--calibrated is for --cascade RUN", param_hint="--calibrated")
        from agentkd.gateway.calibration import traffic_threshold

        with exit_on_error():
            threshold = traffic_threshold(cascade)
    if cascade is not None and teacher is None:
        with exit_on_error():
            teacher, api_base = recorded_teacher(cascade, api_base)
    if teacher is None:
        raise typer.BadParameter("--run needs --teacher MODEL", param_hint="--teacher")
    key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE) or None
    if host not in ("127.0.0.1", "localhost", "::1") and key is None:
        console.print(f"[yellow]warning:[/] serving on {host} without --api-key: anyone who reaches this port "
                      "spends the teacher's budget", soft_wrap=True)
    with exit_on_error():
        settings = GatewaySettings(
            teacher=teacher, run=cascade or run, host=host, port=port, api_key=key, api_base=api_base,
            teacher_price=parse_price(teacher_price, "--teacher-price"), max_body_bytes=int(max_body_mb * 1024 * 1024),
            success_threshold=success_threshold, direct_upstream=not via_litellm,
            cascade=CascadeGatewaySettings(student=student, threshold=threshold, online=online, k=demos)
            if cascade is not None and student is not None else None)
        folder = settings.run
        from agentkd.gateway.server import serve

        def ready(gateway: Any, loaded: int) -> None:
            resumed = f", continuing {loaded} recorded episodes" if loaded else ""
            who = f"teacher [bold]{gateway.client.model}[/]"
            if gateway.student is not None:
                store = gateway.student.store
                who = (f"student [bold]{gateway.student.model}[/] (threshold {threshold}, "
                       f"{len(store) if store is not None else 0} demonstrations) deferring to {who}")
            console.print(f"agentkd gateway: {who} on [bold]http://{host}:{port}/v1[/] (pid {os.getpid()}), "
                          f"recording into {gateway.folder.trajectories_path if cascade else folder}{resumed}; "
                          f"{'requests need the API key; ' if key else ''}SIGTERM or Ctrl-C stops", soft_wrap=True)

        try:
            serve(settings, on_ready=ready)
        except KeyboardInterrupt:
            pass


def recorded_teacher(run: Path, api_base: str | None) -> tuple[str, str | None]:
    """The teacher a gateway run recorded (run.json identity) and, unless `api_base` is given, its api_base."""
    from agentkd.run.folder import RunFolder

    folder = RunFolder(run)
    identity = folder.identity()
    teacher = identity.get("teacher")
    if not teacher or teacher == "reference":
        from agentkd.errors import RunFolderError

        raise RunFolderError(f"{run} records no model teacher to defer to: pass --teacher MODEL")
    details = (folder.read_config() or {}).get("details", {})
    return str(teacher), api_base or details.get("api_base")
