"""Prefix KV-cache reuse in the in-process Hugging Face door (`hf/`), on the real packaged SmolLM2-135M."""

import asyncio

import litellm
import pytest

from agentkd.models.hf import local as local_hf
from agentkd.models.hf import provider as hf_provider
from agentkd.models.hf.prefix_cache import ENV_VAR, PrefixCacheSettingError, common_prefix, reuse_enabled

MODEL = "smollm2-135m"
ASK = [{"role": "system", "content": "You are a helpful assistant."},
       {"role": "user", "content": "Name three colours, one per line."}]


def step2(reply: str) -> list[dict[str, str]]:
    return [*ASK, {"role": "assistant", "content": reply}, {"role": "user", "content": "Now name two animals."}]


@pytest.fixture
def smol(monkeypatch):
    """One torch thread (2 shared cores), reuse on, and the model's stored cache forgotten before and after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.delenv(ENV_VAR, raising=False)
    local_hf.drop_prefix_cache(MODEL)
    yield
    local_hf.drop_prefix_cache(MODEL)
    torch.set_num_threads(threads)


def cold(monkeypatch, messages, **kwargs) -> local_hf.Generation:
    """The same call with reuse off: the whole prompt encoded from scratch, the stored cache untouched."""
    monkeypatch.setenv(ENV_VAR, "0")
    try:
        return local_hf.generate(MODEL, messages, **kwargs)
    finally:
        monkeypatch.delenv(ENV_VAR)


def test_the_setting_is_read_and_a_bad_value_named(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert reuse_enabled()
    monkeypatch.setenv(ENV_VAR, "off")
    assert not reuse_enabled()
    monkeypatch.setenv(ENV_VAR, "maybe")
    with pytest.raises(PrefixCacheSettingError, match=f"{ENV_VAR}='maybe'.*give 1"):
        reuse_enabled()
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2 and common_prefix([], [1]) == 0


@pytest.mark.slow
def test_the_next_step_reuses_the_conversation_and_decodes_the_same(smol, monkeypatch):
    first = local_hf.generate(MODEL, ASK, max_tokens=24)
    assert first.cached_tokens == 0  # a cold call
    messages = step2(first.texts[0])
    warm = local_hf.generate(MODEL, messages, max_tokens=24)
    # the previous prompt and (re-tokenised) reply came from the cache; the new user turn was encoded
    assert first.prompt_tokens <= warm.cached_tokens < warm.prompt_tokens
    ref = cold(monkeypatch, messages, max_tokens=24)
    assert ref.cached_tokens == 0
    assert warm.texts == ref.texts and warm.texts[0].strip()
    assert (warm.prompt_tokens, warm.completion_tokens, warm.finish_reasons) == \
        (ref.prompt_tokens, ref.completion_tokens, ref.finish_reasons)
    again = local_hf.generate(MODEL, messages, n=2, max_tokens=24)  # the same prompt: all but its last token cached
    assert again.cached_tokens == again.prompt_tokens - 1 and again.texts == ref.texts * 2


@pytest.mark.slow
def test_an_unrelated_conversation_after_another_decodes_as_cold(smol, monkeypatch):
    other = [{"role": "user", "content": "Count from 20 to 24, separated by commas."}]
    local_hf.generate(MODEL, step2("Red\nBlue\nGreen"), max_tokens=16)
    warm = local_hf.generate(MODEL, other, max_tokens=16)
    assert warm.cached_tokens < 10  # at most the chat template's opening tokens are shared
    assert warm.texts == cold(monkeypatch, other, max_tokens=16).texts


@pytest.mark.slow
def test_interleaved_episodes_get_their_own_greedy_text(smol, monkeypatch):
    """Threads calling alternately (serialised by the model's lock) fall back to their common prefix."""
    prompts = [[{"role": "user", "content": f"Count from {k} to {k + 4}."}] for k in (1, 20, 300)]
    alone = [cold(monkeypatch, p, max_tokens=12).texts[0] for p in prompts]

    async def together():
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*[loop.run_in_executor(None, lambda p=p: local_hf.generate(MODEL, p, max_tokens=12))
                                      for p in prompts * 2])

    outs = asyncio.run(together())
    assert [g.texts[0] for g in outs] == alone * 2
    assert sum(g.cached_tokens > 0 for g in outs) >= 5  # all but the first share at least the default system prompt


@pytest.mark.slow
def test_samples_share_one_prompt_encoding_and_usage_reports_the_cache(smol):
    hf_provider.register()
    sampled = local_hf.generate(MODEL, ASK, n=3, temperature=1.0, max_tokens=12, seed=3)
    assert len(sampled.texts) == 3 and len(set(sampled.texts)) > 1 and sampled.cached_tokens == 0
    messages = step2(sampled.texts[0])
    response = litellm.completion(model=f"hf/{MODEL}", messages=messages, max_tokens=8, temperature=0.0)
    usage = response.usage
    assert 0 < usage.prompt_tokens_details.cached_tokens < usage.prompt_tokens  # step 2 started from sample 1's cache
