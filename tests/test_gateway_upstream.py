"""The gateway posts requests for an OpenAI-compatible teacher straight to its server (httpx, no litellm): which
teachers go that way, the reply and usage it reads, and the errors it raises. The server is the labelled fake API of
tests/fake_openai.py (it stands in for a paid API)."""

import asyncio

import pytest
from fake_openai import FAKE_KEY, TOOLS, FakeOpenAI

from agentkd.gateway.upstream import HttpUpstream, UpstreamError
from agentkd.models.client import ModelClient


def test_only_openai_compatible_teachers_with_an_api_base_skip_litellm(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    direct = HttpUpstream.for_client(ModelClient("openai/teacher", api_base="http://127.0.0.1:9/v1/"))
    assert direct is not None and direct.url == "http://127.0.0.1:9/v1/chat/completions"
    assert direct.name == "teacher" and direct.model == "openai/teacher" and direct.api_key == FAKE_KEY
    assert HttpUpstream.for_client(ModelClient("hosted_vllm/qwen", api_base="http://127.0.0.1:9/v1")) is not None
    assert HttpUpstream.for_client(ModelClient("openai/gpt-4o-mini")) is None  # no api_base: litellm
    assert HttpUpstream.for_client(ModelClient("anthropic/claude-3-5-haiku-latest", api_base="http://x/v1")) is None


def test_a_reply_and_its_usage_are_read_as_litellm_reads_them(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    with FakeOpenAI() as fake:
        upstream = HttpUpstream.for_client(ModelClient("openai/fake-teacher", api_base=fake.base))
        request = {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": TOOLS, "temperature": 0}

        async def call():
            try:
                return await upstream.chat(request)
            finally:
                await upstream.aclose()

        reply = asyncio.run(call())
        assert fake.requests[-1]["model"] == "fake-teacher" and fake.requests[-1]["tools"] == TOOLS
        (choice,) = reply.response["choices"]
        assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert choice["finish_reason"] == "tool_calls" and reply.model == "openai/fake-teacher"
        assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens == 12 and reply.usage.calls == 1
        assert reply.usage.cached_prompt_tokens == reply.usage.prompt_tokens // 2
        assert reply.response["usage"]["prompt_tokens_details"]["cached_tokens"] == reply.usage.cached_prompt_tokens

        wrong = HttpUpstream("openai/fake-teacher", "fake-teacher", fake.base, "sk-wrong-key-000000", 10.0)
        with pytest.raises(UpstreamError, match="401: Incorrect API key") as refused:
            asyncio.run(wrong.chat(request))
        assert refused.value.status == 401 and refused.value.fatal
