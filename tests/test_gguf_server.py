"""`agentkd serve` + `hosted_vllm/`: llama.cpp's OpenAI-compatible server on 127.0.0.1 with the real SmolLM2."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd import ModelClient
from agentkd.cli import app
from agentkd.run import RunFolder

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """`agentkd serve smollm2-135m` started from this checkout; stopped by its pid at the end."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENTKD_LLAMA_THREADS": "1", "AGENTKD_LLAMA_CTX": "4096"}
    process = subprocess.Popen([sys.executable, "-m", "agentkd.cli", "serve", "smollm2-135m", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as answer:
                    models = json.load(answer)
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"the server exited with {process.returncode}: {process.stderr.read()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("the server did not answer within 90 s")
                time.sleep(0.5)
        assert [m["id"] for m in models["data"]] == ["smollm2-135m"]
        yield base
    finally:
        process.terminate()  # `agentkd serve` execs the server: this pid is the server's
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_served_model_answers_through_hosted_vllm_without_a_key(server):
    client = ModelClient("hosted_vllm/smollm2-135m", api_base=server, max_tokens=24)
    out = asyncio.run(client.complete([{"role": "user", "content": "Name three colours, one per line."}],
                                      n=2, temperature=1.0, stop=["\n"]))
    assert len(out.texts) == 2 and all("\n" not in t for t in out.texts)
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0 and out.usage.cost_usd == 0.0


def test_collect_with_a_served_teacher(server, tmp_path):
    result = CliRunner().invoke(app, [
        "collect", "--env", "factqa", "--teacher", "hosted_vllm/smollm2-135m", "--api-base", server,
        "--run", str(tmp_path), "--n", "1", "--max-steps", "1", "--max-tokens", "48", "--concurrency", "1"])
    assert result.exit_code == 0, result.output
    trajectory = next(RunFolder(tmp_path).iter_trajectories())
    assert trajectory.steps and trajectory.steps[0].model == "hosted_vllm/smollm2-135m"
    assert trajectory.usage.completion_tokens > 0
