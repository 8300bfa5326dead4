"""`agentkd serve` + `hosted_vllm/`: llama.cpp's OpenAI-compatible server on 127.0.0.1 with the real SmolLM2."""

import asyncio

import pytest
from servers import agentkd_server, wait_for_models
from typer.testing import CliRunner

from agentkd import ModelClient
from agentkd.cli import app
from agentkd.run import RunFolder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    """`agentkd serve smollm2-135m` started from this checkout; stopped by its pid at the end."""
    with agentkd_server("smollm2-135m") as (process, base):
        assert wait_for_models(base, process, seconds=90) == ["smollm2-135m"]
        yield base


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
