"""n samples decoded together by the llama.cpp door (one batch of sequences sharing the prompt's KV cells), with
the real SmolLM2-135M GGUF: the same greedy text, the model's distribution, per-sample stops and lengths."""

from collections import Counter

import numpy as np
import pytest

from agentkd.models.distribution.catalog import locate
from agentkd.models.llama.door import LlamaDoor

pytestmark = pytest.mark.slow

ASK = [{"role": "system", "content": "You are a helpful assistant."},
       {"role": "user", "content": "Name three colours, one per line."}]
CODE = [{"role": "user", "content": "Write a Python function that adds two numbers."}]


@pytest.fixture(scope="module")
def door() -> LlamaDoor:
    return LlamaDoor(locate("smollm2-135m"), pool=1, threads=1, n_ctx=2048, seqs=8)


@pytest.fixture
def draws(monkeypatch) -> list:
    """Every sample the batched decoder draws, with its tokens (filled in as it decodes)."""
    seen: dict[int, object] = {}
    decode_next = LlamaDoor._draw_next

    def spy(llama, draw, *args):
        seen.setdefault(id(draw), draw)
        return decode_next(llama, draw, *args)

    monkeypatch.setattr(LlamaDoor, "_draw_next", staticmethod(spy))
    return seen


def together(door: LlamaDoor, messages: list, seeds: list[int], temperature: float, max_tokens: int) -> list:
    """The batched decoder called directly (generate decodes a greedy call once, whatever n)."""
    tokens = door.prompt_tokens(messages)
    slot = door._acquire(tokens)
    try:
        return door._decode_together(slot, tokens, seeds, temperature, 1.0, max_tokens, [], None)
    finally:
        door._release(slot)


def softmax(door: LlamaDoor, tokens: list[int], temperature: float) -> np.ndarray:
    """The model's next-token distribution after `tokens`, from a fresh single-sequence evaluation."""
    import llama_cpp

    llama = door._slots[0].llama
    door.clear_cache()
    llama.eval(tokens)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1), shape=(llama.n_vocab(),))
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    door.clear_cache()
    return p / p.sum()


@pytest.mark.parametrize("messages", [ASK, CODE])
def test_greedy_samples_decoded_together_are_the_sequential_greedy_text(door, messages):
    alone = door.generate(messages, temperature=0.0, max_tokens=48)
    batched = together(door, messages, [1, 2, 3], 0.0, 48)
    assert [s.text for s in batched] == alone.texts * 3
    assert [s.reason for s in batched] == alone.finish_reasons * 3
    assert sum(s.tokens for s in batched) == alone.completion_tokens * 3
    assert door.generate(messages, temperature=0.0, max_tokens=48).texts == alone.texts  # the context is left sound


def test_batched_samples_follow_the_models_distribution(door, draws):
    """The first two tokens of 480 samples at T=0.7 against the model's own joint distribution p(t1) p(t2 | t1):
    t2 comes from a batched decode, so a sample reading another sequence's logits row, or a sequence that lost
    the prompt's KV cells, moves this total variation distance far (a row mix-up measured 0.51)."""
    temperature = 0.7
    for seed in range(60):
        door.generate(ASK, n=8, temperature=temperature, max_tokens=2, seed=1000 * seed)
    pairs = Counter(tuple(d.tokens[:2]) for d in draws.values())
    assert sum(pairs.values()) == 480 and len({t[0] for t in pairs}) > 5  # independent seeds: many first tokens
    prompt = door.prompt_tokens(ASK)
    first = softmax(door, prompt, temperature)
    joint: dict[tuple[int, ...], float] = {}
    for t1 in (int(t) for t in np.argsort(-first)[:40] if first[t] >= 0.005):
        second = softmax(door, [*prompt, t1], temperature)
        joint.update({(t1, int(t2)): first[t1] * second[t2] for t2 in np.argsort(-second)[:40]
                      if first[t1] * second[t2] >= 0.005})
    assert len(joint) >= 15 and sum(joint.values()) > 0.6  # enough of the mass is in named pairs
    observed = [pairs.get(pair, 0) / 480 for pair in joint]
    expected = list(joint.values())
    distance = 0.5 * (sum(abs(o - e) for o, e in zip(observed, expected)) + abs(sum(expected) - sum(observed)))
    assert distance < 0.15  # measured 0.07: sampling noise with 480 samples over ~20 pairs


def test_each_sample_stops_on_its_own(door, draws):
    """Per sample: a stop string cuts it, max_tokens ends it, its reason says which; the same as one by one."""
    batched = door.generate(ASK, n=8, temperature=0.5, max_tokens=10, stop=["\n"], seed=42)
    alone = door.generate(ASK, n=8, temperature=0.5, max_tokens=10, stop=["\n"], seed=42, together=False)
    assert set(batched.finish_reasons) == {"stop", "length"}
    by_seq = sorted(draws.values(), key=lambda d: d.seq)
    assert len(by_seq) == 8
    for text, reason, draw in zip(batched.texts, batched.finish_reasons, by_seq):
        assert "\n" not in text
        if reason == "length":
            assert len(draw.tokens) == 10 and b"\n" not in draw.raw
        else:  # cut at the stop string (the token holding it is counted), or an end-of-turn token (not counted)
            assert b"\n" in draw.raw or (draw.raw == draw.text and len(draw.tokens) < 10)
    assert batched.completion_tokens == sum(len(d.tokens) for d in by_seq)
    same = [i for i, (a, b) in enumerate(zip(batched.texts, alone.texts)) if a == b]
    assert same  # the same seeds give the same sample until a batched kernel's rounding tips a draw
    assert all(batched.finish_reasons[i] == alone.finish_reasons[i] for i in same)
    assert batched.prompt_tokens == alone.prompt_tokens and alone.cached_tokens == alone.prompt_tokens - 1  # kept


def test_the_end_of_turn_is_held_per_sample(door):
    held = door.generate(ASK, n=4, temperature=0.8, max_tokens=40, seed=3, end_only_after="```")
    for text, reason in zip(held.texts, held.finish_reasons):
        assert "```" in text or reason == "length"  # no sample ended its turn before a fence


def test_more_samples_than_sequences_and_a_batch_too_big_for_the_context(draws):
    small = LlamaDoor(locate("smollm2-135m"), pool=1, threads=1, n_ctx=256, seqs=2)
    five = small.generate(ASK, n=5, temperature=1.0, max_tokens=8, seed=9)
    assert len(five.texts) == 5 and len(set(five.texts)) > 1 and len(draws) == 5  # three batches of at most 2
    draws.clear()
    long = small.generate(ASK, n=2, temperature=1.0, max_tokens=150, seed=9)  # 2 x 150 tokens do not fit in 256
    assert len(long.texts) == 2 and not draws  # decoded one after another
    assert small.generate(ASK, max_tokens=8).texts == small.generate(ASK, max_tokens=8, together=False).texts
