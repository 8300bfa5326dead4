"""Test helpers for `agentkd serve` processes started from this checkout: a free port, start, wait, stop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_models(base: str, process: subprocess.Popen, seconds: float = 120) -> list[str]:
    """The model ids the server at `base` lists, once it answers; fails the test if it exits or stays silent."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2) as answer:
                return [m["id"] for m in json.load(answer)["data"]]
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}: {process.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within {seconds} s")
            time.sleep(0.5)


@contextmanager
def agentkd_server(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`agentkd serve ARGS --port <free>` (one llama.cpp thread) as (process, base URL); stopped by its pid at the
    end (`agentkd serve` execs the server, so this pid is the server's)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENTKD_LLAMA_THREADS": "1", "AGENTKD_LLAMA_CTX": "4096"}
    process = subprocess.Popen([sys.executable, "-m", "agentkd.cli", "serve", *args, "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield process, f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
