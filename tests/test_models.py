import asyncio

import pytest
from fake_openai_server import FakeOpenAIServer
from typer.testing import CliRunner

from agentkd import CodeActAgent, LLMPolicy, ModelClient, ModelError
from agentkd.cli import app
from agentkd.collect import collect
from agentkd.run import RunFolder


def stub_client(server, **kw):
    return ModelClient("openai/reference-stub", api_base=server.api_base, api_key="sk-local", **kw)


def test_litellm_teacher_over_http_records_usage(factqa, tmp_path):
    with FakeOpenAIServer(factqa) as server:
        stats = asyncio.run(collect(factqa, LLMPolicy(stub_client(server)), factqa.tasks("train", 8),
                                    RunFolder(tmp_path), concurrency=4))
    assert stats.done == 8 and stats.success_rate == 1.0
    traj = next(RunFolder(tmp_path).iter_trajectories())
    assert traj.usage.prompt_tokens > 0 and traj.usage.completion_tokens > 0
    assert traj.usage.calls == len(traj.steps)
    assert traj.steps[0].model == "openai/reference-stub"


def test_transient_errors_are_retried_with_backoff(factqa):
    with FakeOpenAIServer(factqa, fail_first=2, fail_status=503) as server:
        client = stub_client(server, backoff_s=0.01)
        done = asyncio.run(client.complete([{"role": "user", "content": factqa.tasks("train")[0].prompt}]))
        assert done.text.startswith("Thought:")
        assert server.requests >= 3


def test_transient_errors_give_up_after_max_retries(factqa):
    from agentkd import TransientModelError

    with FakeOpenAIServer(factqa, fail_first=1000, fail_status=500) as server:
        client = stub_client(server, backoff_s=0.01, max_retries=2)
        with pytest.raises(TransientModelError, match="after 2 retries"):
            asyncio.run(client.complete([{"role": "user", "content": "x"}]))


def test_bad_key_fails_fast_and_is_fatal(factqa):
    with FakeOpenAIServer(factqa, fail_first=1000, fail_status=401) as server:
        client = stub_client(server, backoff_s=5.0)
        with pytest.raises(ModelError) as info:
            asyncio.run(asyncio.wait_for(client.complete([{"role": "user", "content": "x"}]), 20))
        assert info.value.fatal
        assert server.requests <= 3  # no backoff loop (the SDK itself may retry once or twice)


def test_cli_stops_on_fatal_error_and_keeps_what_was_written(factqa, tmp_path):
    run = tmp_path / "r"
    with FakeOpenAIServer(factqa) as server:
        ok = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "openai/reference-stub",
                                      "--api-base", server.api_base, "--n", "3", "--run", str(run)],
                                env={"OPENAI_API_KEY": "sk-local"})
        assert ok.exit_code == 0, ok.output
    before = (run / "trajectories.jsonl").read_text()
    with FakeOpenAIServer(factqa, fail_first=1000, fail_status=401) as server:
        bad = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "openai/reference-stub",
                                       "--api-base", server.api_base, "--n", "6", "--run", str(run)],
                                 env={"OPENAI_API_KEY": "sk-local"})
    assert bad.exit_code == 1 and "failed permanently" in bad.output and "re-run" in bad.output
    assert (run / "trajectories.jsonl").read_text() == before


def test_unknown_local_model_fails_at_construction():
    with pytest.raises(ModelError, match="unknown local model"):
        ModelClient("hf/no-such-model")


@pytest.mark.slow
def test_one_episode_with_real_local_smollm2(factqa):
    """The real SmolLM2-135M through litellm's hf/ provider: the loop runs and usage is recorded."""
    client = ModelClient("smollm2-135m", max_tokens=48)
    policy = LLMPolicy(client, role="student", first_thought="I should search the encyclopedia")
    traj = CodeActAgent(factqa, policy, max_steps=2).run(factqa.tasks("test")[0])
    assert traj.status in {"finished", "step_limit"}
    assert 1 <= len(traj.steps) <= 2
    step = traj.steps[0]
    assert step.model == "hf/smollm2-135m" and step.role == "student"
    assert step.output.startswith("Thought: I should search the encyclopedia")
    assert step.usage.prompt_tokens > 100 and step.usage.completion_tokens > 0
    assert step.usage.cost_usd == 0.0
    assert "Observation:" not in step.output


@pytest.mark.slow
def test_local_model_n_samples_and_stop_sequences():
    client = ModelClient("smollm2-135m", max_tokens=24)
    messages = [{"role": "user", "content": "List three colours, one per line."}]
    out = asyncio.run(client.complete(messages, n=3, temperature=1.0, stop=["\n"]))
    assert len(out.texts) == 3
    assert all("\n" not in t for t in out.texts)
    assert out.usage.calls == 1 and out.usage.completion_tokens > 0




def test_cached_and_cache_write_tokens_from_litellm_usage_priced_as_litellm_bills_them():
    """Anthropic's cache reads and writes and OpenAI's cached input reach Usage through litellm's usage, and the
    cache-aware $ of agentkd's prices (litellm's cost map) equal what litellm bills for the same response."""
    import litellm

    from agentkd.evaluate.prices import litellm_price

    cases = (("anthropic/claude-sonnet-4-5", litellm.Usage(prompt_tokens=1000, completion_tokens=10,
                                                           cache_read_input_tokens=600, cache_creation_input_tokens=300),
              (600, 300)),
             ("openai/gpt-4.1-mini", litellm.Usage(prompt_tokens=2000, completion_tokens=10,
                                                   prompt_tokens_details={"cached_tokens": 1536}), (1536, 0)))
    for model, usage, (cached, written) in cases:
        response = litellm.ModelResponse(model=model.split("/", 1)[1], usage=usage)
        recorded = ModelClient(model)._usage(response)
        assert (recorded.cached_prompt_tokens, recorded.cache_write_tokens) == (cached, written)
        price = litellm_price(model)
        assert price.dollars(recorded) == pytest.approx(recorded.cost_usd) and recorded.cost_usd > 0
        assert price.list_dollars(recorded) > price.dollars(recorded)
    plain = ModelClient("hosted_vllm/x")._usage(litellm.ModelResponse(usage=litellm.Usage(prompt_tokens=5,
                                                                                           completion_tokens=1)))
    assert (plain.cached_prompt_tokens, plain.cache_write_tokens) == (0, 0)  # e.g. llama.cpp's server says nothing
