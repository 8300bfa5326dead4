"""The `agentkd` command line: one module per command, shared options in `common`.

Importing this package imports typer and rich only; each command imports the library when it runs,
so `agentkd --help` prints at once.
"""

from __future__ import annotations

import typer

from agentkd.cli.bench import bench_app
from agentkd.cli.calibrate import calibrate_command
from agentkd.cli.check_env import check_env_command
from agentkd.cli.collect import collect_command
from agentkd.cli.common import CONTEXT_SETTINGS, Command, Group
from agentkd.cli.eval import eval_command
from agentkd.cli.export import export_command
from agentkd.cli.gateway import gateway_command
from agentkd.cli.improve import improve_command
from agentkd.cli.index import index_command
from agentkd.cli.models import models_app
from agentkd.cli.pipeline import pipeline_command
from agentkd.cli.report import report_command
from agentkd.cli.serve import serve_command
from agentkd.cli.train import train_command

app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings=CONTEXT_SETTINGS, cls=Group,
                  help="agentkd: distil LLM agents through their trajectories.")


@app.callback()
def main() -> None:
    """Collect teacher trajectories, distil them into small students, evaluate."""


app.command("collect", cls=Command)(collect_command)
app.command("index", cls=Command)(index_command)
app.command("train", cls=Command)(train_command)
app.command("export", cls=Command)(export_command)
app.command("eval", cls=Command)(eval_command)
app.command("calibrate", cls=Command)(calibrate_command)
app.command("pipeline", cls=Command)(pipeline_command)
app.command("improve", cls=Command)(improve_command)
app.add_typer(bench_app, name="bench")
app.command("report", cls=Command)(report_command)
app.command("check-env", cls=Command)(check_env_command)
app.add_typer(models_app, name="models")
app.command("serve", cls=Command)(serve_command)
app.command("gateway", cls=Command)(gateway_command)

__all__ = ["app"]
