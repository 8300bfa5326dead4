"""What every command shares: the consoles, option definitions, error exits.

Nothing heavy is imported here: `agentkd --help` must print without loading litellm, LangGraph or FAISS.
"""

from __future__ import annotations

import os
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from pydantic import BaseModel

    from agentkd.collect import CollectStats
    from agentkd.evaluate.prices import Price
    from agentkd.models.rate_limit import RateLimit
    from agentkd.sandbox.host import SandboxConfig
    from agentkd.scale import Backend

console = Console(stderr=True)
"""Progress, status and errors (stderr); tables go to stdout."""

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}
"""Every command takes -h as well as --help."""


def _flags_without_placeholder(params: list[Any]) -> list[Any]:
    """On/off flags take no value: show none (typer would show `<bool>`, and `--flag true` is refused)."""
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """Every agentkd command: flags (--help included) show no value placeholder in the help."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_placeholder(super().get_params(ctx))


class Group(TyperGroup):
    """`agentkd` and `agentkd models`: as Command."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_placeholder(super().get_params(ctx))


BUILTIN_ENVS = "factqa, mathcode, apiworld, household"
"""The built-in environments, as the help names them (tests check it against `builtin_names()`)."""
SANDBOX_CHOICES = ("auto", "bwrap", "none")


def choice(*values: str) -> dict[str, Any]:
    """`typer.Option` settings for an option taking one of `values`: a wrong value is refused when the arguments
    are parsed, before any library is imported, with the option's name and the choices."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in values:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(repr(v) for v in values)}")
        return value

    return {"callback": check, "metavar": "|".join(values)}


def field_option(model: type[BaseModel], name: str, *flags: str, scope: str = "", unset: bool = False,
                 **settings: Any) -> Any:
    """A `typer.Option` for the setting `name` of the pydantic `model`: the field's default (shown in the help), its
    description as the help (after `scope`, e.g. "Cascade"), its bounds, and its choices when it is a Literal.

    `unset=True`: the option is None unless given, so that another source (a YAML file) may set the setting; the
    help still shows the field's default. `flags` default to `--name-with-dashes`; `settings` go to typer.Option."""
    field = model.model_fields[name]
    text = " ".join((field.description or "").split())
    if scope:
        text = f"{scope}: {text[:1].lower()}{text[1:]}" if text else scope
    values = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
    checks: dict[str, Any] = dict(choice(*values)) if values else {}
    for bound in field.metadata:
        for key, option in (("ge", "min"), ("le", "max")):
            if getattr(bound, key, None) is not None:
                checks[option] = getattr(bound, key)
        for key, holds in (("gt", lambda v, b: v > b), ("lt", lambda v, b: v < b)):
            if getattr(bound, key, None) is not None:
                checks["callback"] = _exclusive(checks.get("callback"), key, getattr(bound, key), holds)
    shown = True if not unset else False if field.default is None else str(field.default)
    option = typer.Option(None if unset else field.default, *(flags or (f"--{name.replace('_', '-')}",)),
                          help=escape(text), show_default=shown, **{**checks, **settings})
    option.setting = (model, name)  # type: ignore[attr-defined]  # which field it reads (for the tests)
    return option


def _exclusive(then: Callable[[Any], Any] | None, key: str, bound: float,
               holds: Callable[[float, float], bool]) -> Callable[[Any], Any]:
    """A typer callback refusing a value on the wrong side of an exclusive bound (`gt` / `lt`)."""

    def check(value: Any) -> Any:
        if value is not None and not holds(value, bound):
            raise typer.BadParameter(f"{value} is not {'>' if key == 'gt' else '<'} {bound}")
        return then(value) if then else value

    return check


def run_folder(value: Path | None) -> Path | None:
    """Typer callback of --run options: refuse, when the arguments are parsed, a path that is (or lies under) a
    regular file."""
    if value is None:
        return value
    for place in (value, *value.parents):
        if place.exists():
            if not place.is_dir():
                where = "is a file" if place == value else f"lies under {place}, which is a file"
                raise typer.BadParameter(f"{value} {where}, not a folder: give the path of a run folder (created "
                                         "when missing)")
            break
    return value


RunOption = Annotated[Path, typer.Option("--run", callback=run_folder, help="Run folder made by `agentkd collect`.")]


def sandbox_choice(value: str | None) -> str | None:
    """Typer callback of --sandbox: one of SANDBOX_CHOICES; without it, $AGENTKD_SANDBOX is checked the same way
    (both when the arguments are parsed)."""
    if value is None:
        variable = os.environ.get("AGENTKD_SANDBOX", "auto")
        if variable not in SANDBOX_CHOICES:
            raise typer.BadParameter(f"not given, and $AGENTKD_SANDBOX is {variable!r}, not one of "
                                     f"{', '.join(repr(v) for v in SANDBOX_CHOICES)}: fix or unset it")
        return value
    return choice(*SANDBOX_CHOICES)["callback"](value)


SandboxOption = Annotated[Optional[str], typer.Option(
    "--sandbox", callback=sandbox_choice, metavar="|".join(SANDBOX_CHOICES),
    help="Isolation of model-written code: auto (bubblewrap, refuse if missing) | bwrap | none "
         "(no isolation; only for trusted models). Default: $AGENTKD_SANDBOX or auto.")]
MaxStepsOption = Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Override the env's step limit.")]
ApiBaseOption = Annotated[Optional[str], typer.Option("--api-base", help="Base URL of an OpenAI-compatible teacher server.")]
EnvOption = Annotated[str, typer.Option(
    "--env", help=f"Environment: built-in name ({BUILTIN_ENVS}), path/to/env.py[:attr] or module:attr.")]
EnvArgOption = Annotated[Optional[list[str]], typer.Option(
    "--env-arg", help="KEY=VALUE passed to the environment's function (repeatable), e.g. --env-arg tasks_per_split=500.")]

BackendOption = Annotated[str, typer.Option(
    "--backend", **choice("local", "ray"),
    help="Where episodes run: local (asyncio in this process) | ray (Ray workers; pip install "
         "'agentkd\\[ray]'). A run resumes on either.")]
RayAddressOption = Annotated[Optional[str], typer.Option(
    "--ray-address", help="Ray cluster to join: 'auto' (the one `ray start --head` runs here), HEAD_IP:6379 or "
                          "ray://HEAD_IP:10001. Default: $RAY_ADDRESS, else a cluster running here, else a local "
                          "one started for the job.")]
WorkersOption = Annotated[int, typer.Option(
    "--workers", min=1, help="Ray workers; each runs --concurrency episodes at once.")]
RpmOption = Annotated[Optional[float], typer.Option(
    "--rpm", min=0.001, help="Requests per minute per API model, shared by every episode and Ray worker of the job.")]
TpmOption = Annotated[Optional[float], typer.Option(
    "--tpm", min=1, help="Tokens (prompt + completion) per minute per API model, shared like --rpm.")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: MESSAGE` (taken literally: brackets in it are not markup) and exit with `code`."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def exit_code(exc: BaseException) -> int:
    """The exit code of a command stopped by `exc`: 130 after Ctrl-C (JobInterrupted), else 1."""
    from agentkd.errors import JobInterrupted

    return 130 if isinstance(exc, JobInterrupted) else 1


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Turn agentkd's errors (and a bad value) into one red line and a non-zero exit (130 after Ctrl-C)."""
    from agentkd.errors import AgentKDError

    try:
        yield
    except (AgentKDError, ValueError) as exc:
        fail(str(exc), exit_code(exc))


def sandbox_config(isolation: Optional[str], **limits: float) -> SandboxConfig:
    """The sandbox settings from --sandbox (its value, and $AGENTKD_SANDBOX, are checked when parsing)."""
    from agentkd.sandbox.host import SandboxConfig

    return SandboxConfig(**limits, **({"isolation": isolation} if isolation else {}))


def backend_config(backend: str, address: Optional[str], workers: int) -> Backend:
    """The backend settings from --backend / --ray-address / --workers (a clear error for a wrong mix)."""
    from agentkd.scale import Backend

    if backend not in ("local", "ray"):
        fail(f"unknown backend {backend!r}; choose local or ray", code=2)
    if backend == "local" and address is not None:
        fail("--ray-address needs --backend ray", code=2)
    return Backend(kind=backend, address=address, workers=workers)  # type: ignore[arg-type]


def rate_limit_config(rpm: Optional[float], tpm: Optional[float]) -> Optional[RateLimit]:
    """The shared budget from --rpm / --tpm, or None when neither is given."""
    from agentkd.models.rate_limit import RateLimit

    return RateLimit(rpm=rpm, tpm=tpm) if rpm is not None or tpm is not None else None


def print_rate_limits(stats: CollectStats, asked: bool) -> None:
    """One line per rate-limited model: requests, tokens, seconds waited in all, 429s the provider answered."""
    for note in stats.rate_limit_notes(asked):
        console.print(note, soft_wrap=True, markup=False)


def parse_price(text: Optional[str], option: str) -> Optional[Price]:
    """`3,15,0.3` -> the Price: $ per 1M prompt and completion tokens, then optionally cached reads and cache
    writes (source `stated`)."""
    from pydantic import ValidationError

    from agentkd.evaluate.prices import Price

    if text is None:
        return None
    try:
        return Price.model_validate(text)
    except ValidationError as exc:
        fail(f"{option} takes 2 to 4 numbers, $ per 1M prompt,completion[,cached-read[,cache-write]] tokens, e.g. "
             f"3,15,0.3 ({exc.errors()[0]['msg']})")
