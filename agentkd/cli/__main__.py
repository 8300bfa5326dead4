"""`python -m agentkd.cli ...` runs the command line."""

from agentkd.cli import app

app()
