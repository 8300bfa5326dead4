"""Shared rate limits per model (in one process): token buckets, ModelClient drawing from them, 429s."""

import asyncio

import pytest
from fake_openai_server import FakeOpenAIServer

from agentkd.errors import TransientModelError
from agentkd.models.client import ModelClient
from agentkd.models.rate_limit import LocalRateLimiter, RateLimit, TokenBucket, rate_limited, rate_limiter_for
from agentkd.scale import limited_models
from agentkd.specs import PolicySpec

MODEL = "hosted_vllm/reference-stub"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_hands_out_the_burst_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(per_minute=120, burst_s=2, clock=clock)  # 2 a second, 4 saved up
    assert [bucket.reserve(1) for _ in range(4)] == [0, 0, 0, 0]
    assert bucket.reserve(1) == pytest.approx(0.5)  # the fifth waits for the refill
    assert bucket.reserve(1) == pytest.approx(1.0)  # reservations queue up in arrival order
    clock.now += 10  # idle time refills only up to the burst
    assert bucket.level == pytest.approx(-2) and bucket.reserve(0) == 0 and bucket.level == pytest.approx(4)


def test_token_bucket_settles_the_true_cost_and_drains_on_a_429():
    clock = Clock()
    bucket = TokenBucket(per_minute=600, burst_s=6, clock=clock)  # 10 tokens a second, 60 saved up
    assert bucket.reserve(50) == 0
    bucket.adjust(-30)  # the call used 20, not 50: 30 come back
    assert bucket.level == pytest.approx(40)
    bucket.adjust(100)  # or it used far more than reserved: the debt delays the next caller
    assert bucket.reserve(10) == pytest.approx(7.0)
    bucket.level = 30
    bucket.drain()
    assert bucket.level == 0 and bucket.reserve(5) == pytest.approx(0.5)


def test_rate_limit_needs_a_limit():
    with pytest.raises(ValueError, match="rpm .* or tpm"):
        RateLimit()


def test_limited_models_are_the_api_models_a_policy_calls():
    cascade = PolicySpec(kind="cascade", settings={
        "student": {"kind": "icd", "settings": {"model": "smollm2-135m"}},
        "teacher": {"kind": "llm", "settings": {"model": "openai/gpt-4o-mini"}}})
    assert limited_models(cascade) == ["openai/gpt-4o-mini"]
    assert limited_models(PolicySpec(kind="student", settings={"model": "trained"})) == []
    assert limited_models(PolicySpec(kind="reference")) == []


def test_clients_in_one_process_share_the_budget_of_their_model(factqa):
    task = factqa.tasks("train", 1)[0]
    messages = [{"role": "system", "content": "x"}, {"role": "user", "content": task.prompt}]
    limiter = LocalRateLimiter(RateLimit(rpm=600, burst_s=0.1))  # 10 requests a second, 1 at once

    async def calls(n: int) -> list:
        clients = [ModelClient(MODEL, api_base=server.api_base, api_key="sk-local") for _ in range(3)]
        return await asyncio.gather(*(clients[i % 3].complete(messages) for i in range(n)))

    with FakeOpenAIServer(factqa) as server:
        with rate_limited({MODEL: limiter}):
            assert rate_limiter_for(MODEL) is limiter
            completions = asyncio.run(calls(8))
        assert rate_limiter_for(MODEL) is None  # uninstalled after the block
        span = server.request_times[-1] - server.request_times[0]
    assert span >= 0.6, server.request_times  # 8 requests at 10 a second, one at a time: 0.7 s from first to last
    assert limiter.stats.requests == 8 and limiter.stats.waited_s >= 2.5  # 0.1 + 0.2 + ... + 0.7
    assert limiter.stats.tokens == sum(c.usage.total_tokens for c in completions)  # settled to the real usage


def test_a_token_budget_spaces_calls_by_their_real_usage(factqa):
    task = factqa.tasks("train", 1)[0]
    messages = [{"role": "user", "content": task.prompt}]
    limiter = LocalRateLimiter(RateLimit(tpm=60 * 400, burst_s=0.05))  # 400 tokens a second

    async def calls() -> list:
        client = ModelClient(MODEL, api_base=server.api_base, api_key="sk-local", rate_limiter=limiter)
        return [await client.complete(messages) for _ in range(4)]

    with FakeOpenAIServer(factqa) as server:
        completions = asyncio.run(calls())
        span = server.request_times[-1] - server.request_times[0]
    used = [c.usage.total_tokens for c in completions]
    assert limiter.stats.tokens == sum(used)
    # the first three calls' real tokens, less the 20 saved up, had to be earned at 400 a second
    assert span >= 0.9 * (sum(used[:3]) - 20) / 400 > 0.1, (used, span)


def test_429s_drain_the_budget_are_retried_and_counted(factqa):
    messages = [{"role": "user", "content": factqa.tasks("train", 1)[0].prompt}]
    limiter = LocalRateLimiter(RateLimit(rpm=6000))

    with FakeOpenAIServer(factqa, fail_first=2, fail_status=429) as server:
        client = ModelClient(MODEL, api_base=server.api_base, api_key="sk-local", backoff_s=0.01, max_retries=3,
                             rate_limiter=limiter)
        assert asyncio.run(client.complete(messages)).text.startswith("Thought")
    assert limiter.stats.rate_limited == 2 and limiter.stats.requests == 3

    with FakeOpenAIServer(factqa, fail_first=10, fail_status=429) as server:  # outlives the retries: transient
        client = ModelClient(MODEL, api_base=server.api_base, api_key="sk-local", backoff_s=0.01, max_retries=2,
                             rate_limiter=limiter)
        with pytest.raises(TransientModelError, match="after 2 retries"):
            asyncio.run(client.complete(messages))
    assert limiter.stats.rate_limited == 5
