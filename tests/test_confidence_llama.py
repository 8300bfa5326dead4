"""Confidence deferral with a real llama.cpp model (SmolLM2-135M GGUF): token log-probabilities, a scored student
step, and `agentkd calibrate` end to end."""

import asyncio
import json

import pytest
from typer.testing import CliRunner

from agentkd import ModelClient
from agentkd.cli import app
from agentkd.models.distribution.catalog import locate
from agentkd.models.llama.door import LlamaDoor

pytestmark = pytest.mark.slow

ASK = [{"role": "user", "content": "Write one line of python that prints 6 * 7, in a ```python block."}]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("AGENTKD_LLAMA_THREADS", "1")  # the machine has 2 cores and other work on it


def test_logprobs_come_with_the_same_greedy_text():
    door = LlamaDoor(locate("smollm2-135m"), pool=1, threads=1, n_ctx=2048)
    plain = door.generate(ASK, max_tokens=24)
    scored = door.generate(ASK, max_tokens=24, logprobs=True)
    assert plain.token_logprobs is None and scored.texts == plain.texts
    (tokens,) = scored.token_logprobs
    assert len(tokens) == scored.completion_tokens and all(lp <= 0.0 for _, lp in tokens)
    assert "".join(piece for piece, _ in tokens).startswith(scored.texts[0])
    assert any(lp < -1e-3 for _, lp in tokens)  # real probabilities, not all certain
    sampled = door.generate(ASK, n=3, temperature=0.9, max_tokens=16, logprobs=True, seed=3)
    assert sum(len(t) for t in sampled.token_logprobs) == sampled.completion_tokens
    assert min(lp for t in sampled.token_logprobs for _, lp in t) < min(lp for _, lp in tokens) or len(
        set(sampled.texts)) > 1  # sampling at 0.9 draws less likely tokens than greedy decoding


def test_the_client_returns_logprobs_and_refuses_models_without_them():
    out = asyncio.run(ModelClient("gguf/smollm2-135m", max_tokens=16).complete(ASK, logprobs=True))
    assert out.logprobs is not None and len(out.logprobs[0]) == out.usage.completion_tokens
    with pytest.raises(Exception, match="log-probabilities"):
        asyncio.run(ModelClient("hf/smollm2-135m", max_tokens=4).complete(ASK, logprobs=True))


def test_calibrate_end_to_end(tmp_path):
    runner = CliRunner()
    run = str(tmp_path / "run")
    done = runner.invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--split", "train[0:6]",
                               "--run", run])
    assert done.exit_code == 0, done.output
    assert runner.invoke(app, ["index", "--run", run]).exit_code == 0
    args = ["calibrate", "--run", run, "--split", "train[6:8]", "--student", "gguf/smollm2-135m", "--policy",
            "cascade-k1", "--max-tokens", "48", "--target", "0.9"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    record = json.loads((tmp_path / "run" / "calibration" / "cascade-confidence-k1.json").read_text())
    assert record["steps"] >= 2 and record["policy"]["settings"]["agreement"] == "confidence"
    assert record["policy"]["settings"]["threshold"] == record["chosen"]["threshold"]
    assert record["chosen"]["step_accuracy"] >= 0.9
    assert "chosen threshold" in done.output and "--calibrated cascade-confidence-k1" in done.output
    evaluated = runner.invoke(app, ["eval", "--run", run, "--policy", "cascade", "--calibrated", "cascade-confidence-k1",
                                    "--n", "1", "--name", "calibrated"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "run" / "eval" / "calibrated.json").read_text())
    assert report["details"]["policy_spec"]["settings"]["threshold"] == record["chosen"]["threshold"]
    assert report["details"]["policy_spec"]["settings"]["student"]["settings"]["model"] == "gguf/smollm2-135m"
    missing = runner.invoke(app, ["eval", "--run", run, "--policy", "cascade", "--calibrated", "nope"])
    assert missing.exit_code != 0 and "there is cascade-confidence-k1" in missing.output
    refused = runner.invoke(app, [*args[:4], "train[0:2]", *args[5:]])  # tasks the run collected
    assert refused.exit_code != 0 and "collected" in refused.output
    checked = runner.invoke(app, [*args, "--name", "checked", "--check-thresholds", "0,1"])
    assert checked.exit_code == 0, checked.output
    record = json.loads((tmp_path / "run" / "calibration" / "checked.json").read_text())
    by = record["episodes"]
    assert (by["teacher_successes"], by["episodes"]) == (2, 2)  # the reference teacher solves both dev tasks
    assert [c["threshold"] for c in by["checks"]] == sorted({0.0, 1.0, record["chosen"]["threshold"]})
    for check in by["checks"]:
        assert (tmp_path / "run" / "eval" / f"{check['evaluation']}.json").is_file() and check["episodes"] == 2
    qualifying = [c for c in by["checks"] if c["successes"] >= 2 - 0.03 * 2]
    if qualifying:
        cheapest = min(qualifying, key=lambda c: (c["cost_per_episode_usd"], c["threshold"]))
        assert by["chosen"] == cheapest and record["policy"]["settings"]["threshold"] == cheapest["threshold"]
    else:
        assert by["chosen"] is None and record["policy"]["settings"]["threshold"] == record["chosen"]["threshold"]
    assert "episodes of train[6:8]" in checked.output
    bad = runner.invoke(app, [*args, "--check-thresholds", "0.5,2"])
    assert bad.exit_code != 0 and "'2' is not a threshold" in bad.output
