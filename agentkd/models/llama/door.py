"""In-process GGUF models through llama.cpp (llama-cpp-python): chat formatting, n samples, prefix reuse.

One `LlamaDoor` per model file per process. It holds a small pool of llama.cpp contexts (AGENTKD_LLAMA_POOL,
default 1); each context is used by one call at a time, so concurrent episodes never share a KV cache while
it is being written. A call takes the free context whose cached tokens share the longest prefix with its
prompt, so the next step of the same episode, whose prompt extends the previous one, reuses its KV cache.

The n samples of a call are decoded together: the prompt is decoded once into sequence 0, sequences 1..n-1
share its KV cells, and each llama_decode call advances every unfinished sample by one token (samples that
have drawn the same tokens so far share that token's row and cell); each sample has its own sampler and
seed, and ends on its own (end of turn, stop string, max_tokens). Contexts hold
AGENTKD_LLAMA_SEQS sequences (default 8; more samples go in several batches); with 1, or `together=False`,
the samples are decoded one after another, each replaying only the prompt's last token.
"""

from __future__ import annotations

import atexit
import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentkd.errors import ModelError
from agentkd.models.distribution.catalog import resolve_gguf
from agentkd.models.llama.build import check_model_runs
from agentkd.models.llama.settings import (
    DEFAULT_N_CTX,
    DEFAULT_SEQS,
    default_n_ctx,
    default_seqs,
    default_threads,
    pool_size,
)
from agentkd.models.prefix import common_prefix
from agentkd.sampling import TEACHER_MAX_TOKENS


@dataclass
class LlamaGeneration:
    """n completions of one prompt and what they cost."""

    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    """The part of the prompt (counted once, like prompt_tokens) already in the chosen context's KV cache."""
    latency_s: float
    token_logprobs: list[list[tuple[str, float]]] | None = None
    """With `logprobs=True`: each sample's generated tokens, as (text, natural-log probability under the model's
    unscaled distribution)."""


@dataclass
class _Slot:
    llama: Any
    busy: bool = False
    tokens: list[int] = field(default_factory=list)


@dataclass
class _Sample:
    """One finished completion."""

    text: str
    reason: str
    tokens: int
    token_logprobs: list[tuple[str, float]] | None = None


@dataclass
class _Draw:
    """One sample being decoded in a batch: its sequence, sampler and progress (as llama-cpp-python tracks it)."""

    seq: int
    sampler: Any
    tokens: list[int] = field(default_factory=list)
    raw: bytes = b""
    text: bytes = b""
    reason: str | None = None
    fed: int = 0
    """How many of `tokens` were decoded into the sequence's KV cells."""
    multibyte: int = 0
    seen: bool = False
    logprobs: list[float] | None = None
    """The log-probability of each drawn token, when asked for."""


_SPARE = 4
"""Tokens a sample may run past max_tokens while its text ends inside a UTF-8 character (llama-cpp-python's rule)."""


class LlamaDoor:
    """A GGUF model served in this process by a pool of llama.cpp contexts."""

    def __init__(self, path: Path, pool: int = 1, threads: int = 1, n_ctx: int = DEFAULT_N_CTX,
                 seqs: int = DEFAULT_SEQS) -> None:
        from llama_cpp import llama_max_parallel_sequences

        self.path = path
        self.pool = pool
        self.threads = threads
        self.n_ctx = n_ctx
        self.seqs = max(1, min(seqs, llama_max_parallel_sequences(), 512))
        """Sequences one context decodes together (1: samples one after another)."""
        self._slots: list[_Slot] = []
        self._cond = threading.Condition()
        self._loading = 0
        check_model_runs(path)
        first = self._new_llama()
        self._slots.append(_Slot(first))
        self._formatters = _formatters(first)

    def _new_llama(self) -> Any:
        from llama_cpp import Llama

        try:
            llama = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.threads,
                          n_threads_batch=self.threads, n_batch=512, logits_all=False, verbose=False)
            if self.seqs > 1 and not (llama._is_recurrent or llama._is_hybrid):
                _hold_sequences(llama, self.seqs)
            else:
                self.seqs = 1
            return llama
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {self.path}: {exc}", fatal=True) from exc

    def prompt_tokens(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int]:
        """The chat template applied; a trailing assistant message is left open to be continued. `tools`: OpenAI
        tool definitions, rendered by the template (with the conversation's tool calls and tool results)."""
        continue_final = bool(messages) and messages[-1].get("role") == "assistant"
        if tools:
            from agentkd.tool_calls import template_messages

            plain = template_messages(messages)
        else:
            plain = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
        offered = {"tools": tools} if tools else {}
        if continue_final:
            text = self._formatters[False](messages=plain, **offered).prompt
            final = plain[-1]["content"]
            cut = text.rfind(final) if final else -1
            if cut < 0:
                raise ModelError("the chat template dropped the partial assistant message; it cannot be continued here")
            text = text[:cut + len(final)]
        else:
            text = self._formatters[True](messages=plain, **offered).prompt
        llama = self._slots[0].llama
        tokens = llama.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        bos = llama.token_bos()
        if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:  # the template wrote a BOS itself
            tokens = tokens[1:]
        return tokens

    def generate(self, messages: list[dict[str, Any]], n: int = 1, temperature: float = 0.0, max_tokens: int = TEACHER_MAX_TOKENS,
                 stop: list[str] | None = None, top_p: float = 1.0, seed: int | None = None,
                 end_only_after: str | None = None, together: bool = True, logprobs: bool = False,
                 tools: list[dict[str, Any]] | None = None) -> LlamaGeneration:
        """n completions of a chat (greedy when temperature is 0: one decode, repeated). With `end_only_after`, the
        end-of-turn tokens cannot be sampled until the completion contains that text (it still ends at a stop
        string or max_tokens). `together`: decode the n samples as one batch (False: one after another).
        `logprobs`: also return each generated token's log-probability (decoded by the batch loop, which reads
        every row of logits; a call whose samples cannot fit the context that way returns none). `tools`: OpenAI
        tool definitions the chat template shows the model (see `prompt_tokens`)."""
        started = time.perf_counter()
        tokens = self.prompt_tokens(messages, tools)
        room = self.n_ctx - len(tokens)
        if room <= 1:
            raise ModelError(f"the prompt has {len(tokens)} tokens and the context window {self.n_ctx}: "
                             "shorten the episode or raise AGENTKD_LLAMA_CTX")
        stop = [s for s in (stop or []) if s]
        base_seed = seed if seed is not None else random.randrange(2**31)
        draws = 1 if temperature <= 0 else n
        limit = min(max_tokens, room - 1)
        slot = self._acquire(tokens)
        try:
            # the prompt is counted once; llama.cpp always evaluates its last token again
            cached = min(common_prefix(slot.tokens, tokens), len(tokens) - 1)
            width = min(draws, self.seqs)
            if ((together or logprobs) and (width > 1 or logprobs) and limit >= 1
                    and len(tokens) + width * (limit + _SPARE) <= self.n_ctx):
                samples: list[_Sample] = []
                for first in range(0, draws, width):
                    seeds = [base_seed + i for i in range(first, min(draws, first + width))]
                    samples += self._decode_together(slot, tokens, seeds, temperature, top_p, limit, stop,
                                                     end_only_after, logprobs)
            else:
                samples = [self._decode_alone(slot, tokens, base_seed + i, temperature, top_p, limit, stop,
                                              end_only_after) for i in range(draws)]
        except (ValueError, RuntimeError) as exc:
            _forget(slot)
            raise ModelError(f"llama.cpp refused the request: {exc}") from exc
        finally:
            self._release(slot)
        texts, reasons = [s.text for s in samples], [s.reason for s in samples]
        scored = [s.token_logprobs for s in samples]
        completion_tokens = sum(s.tokens for s in samples)
        if len(texts) < n:  # greedy: the n samples are the same decode
            texts, reasons, scored = texts * n, reasons * n, scored * n
            completion_tokens *= n
        token_logprobs = None if not logprobs or any(s is None for s in scored) else scored
        return LlamaGeneration(texts, reasons, len(tokens), completion_tokens, cached, time.perf_counter() - started,
                               token_logprobs)

    def clear_cache(self) -> None:
        """Forget what every idle context holds, so that the next call evaluates its whole prompt."""
        with self._cond:
            for slot in self._slots:
                if not slot.busy:
                    _forget(slot)

    def _decode_alone(self, slot: _Slot, tokens: list[int], seed: int, temperature: float, top_p: float,
                      limit: int, stop: list[str], end_only_after: str | None) -> _Sample:
        """One completion by llama-cpp-python's own loop, reusing the prompt's KV cache."""
        out = slot.llama.create_completion(
            prompt=tokens, max_tokens=limit, temperature=max(temperature, 0.0), top_p=top_p, top_k=0, min_p=0.0,
            repeat_penalty=1.0, stop=stop, seed=seed,
            logits_processor=None if end_only_after is None else  # one per sample: it keeps state
            self._end_hold(slot.llama, len(tokens), end_only_after))
        choice = out["choices"][0]
        slot.tokens = list(slot.llama._input_ids[: slot.llama.n_tokens])
        return _Sample(choice["text"], choice.get("finish_reason") or "stop", int(out["usage"]["completion_tokens"]))

    def _decode_together(self, slot: _Slot, tokens: list[int], seeds: list[int], temperature: float, top_p: float,
                         limit: int, stop: list[str], end_only_after: str | None,
                         logprobs: bool = False) -> list[_Sample]:
        """len(seeds) completions decoded as one batch of sequences sharing the prompt's KV cells; while samples
        agree token for token, their common token is decoded once, into a KV cell they share. Each sample is
        sampled, held and ended as `_decode_alone` would (same sampler chain, seed, stop and length rules)."""
        import llama_cpp

        llama, ctx = slot.llama, slot.llama._ctx
        size = len(tokens)
        reuse = min(common_prefix(slot.tokens, tokens), size - 1)
        slot.tokens = []  # the context is in flux until the batch is done
        for seq in range(1, self.seqs):  # nothing but sequence 0 outlives a call; this is the safety net
            llama_cpp.llama_memory_seq_rm(ctx.memory, seq, -1, -1)
        if reuse == 0 or not ctx.kv_cache_seq_rm(0, reuse, -1):
            reuse = 0
            ctx.kv_cache_clear()
        llama.n_tokens = reuse
        llama.eval(tokens[reuse:])  # the prompt into sequence 0; one output row: its last token's logits
        for seq in range(1, len(seeds)):
            llama_cpp.llama_memory_seq_cp(ctx.memory, 0, seq, -1, -1)
        stops = [s.encode("utf-8") for s in stop]
        ends = _end_tokens(llama) if end_only_after is not None else []
        draws = [_Draw(seq, _sampler(llama, temperature, top_p, seed), logprobs=[] if logprobs else None)
                 for seq, seed in enumerate(seeds)]
        groups = [draws]  # samples whose tokens are the same so far: one row of logits, their next token decoded once
        rows = [-1]  # the prompt's last token: the only output of the prompt's decode
        batch = llama._batch.batch
        try:
            while groups:
                for row, group in zip(rows, groups):
                    for draw in group:
                        self._draw_next(llama, draw, row, stops, limit, end_only_after, ends)
                groups = [same for group in groups for same in _split(group)]
                for row, group in enumerate(groups):
                    batch.token[row] = group[0].tokens[-1]
                    batch.pos[row] = size + group[0].fed
                    batch.n_seq_id[row] = len(group)
                    for j, draw in enumerate(group):
                        batch.seq_id[row][j] = draw.seq
                        draw.fed += 1
                    batch.logits[row] = True
                batch.n_tokens = len(groups)
                rows = list(range(len(groups)))
                if groups:
                    ctx.decode(llama._batch)
        finally:
            for draw in draws:
                draw.sampler.close()
        for seq in range(1, len(seeds)):
            llama_cpp.llama_memory_seq_rm(ctx.memory, seq, -1, -1)
        kept = draws[0].tokens[: draws[0].fed]  # sequence 0 stays: the prompt and the first sample's decoded tokens
        llama.input_ids[size: size + len(kept)] = kept
        llama.n_tokens = size + len(kept)
        llama._requires_eval = True  # the last logits are not sequence 0's: a cache hit must replay a token
        slot.tokens = list(llama._input_ids[: llama.n_tokens])
        return [_Sample(d.text.decode("utf-8", errors="ignore"), d.reason or "stop", len(d.tokens),
                        None if d.logprobs is None else [
                            (llama.detokenize([t]).decode("utf-8", errors="ignore"), lp)
                            for t, lp in zip(d.tokens, d.logprobs)]) for d in draws]

    @staticmethod
    def _draw_next(llama: Any, draw: _Draw, row: int, stops: list[bytes], limit: int, needed: str | None,
                   ends: list[int]) -> None:
        """Sample `draw`'s next token from output `row` of the last decode and apply llama-cpp-python's rules
        (`Llama._create_completion`): end of generation, incomplete UTF-8, stop strings, max_tokens."""
        import llama_cpp

        if needed is not None and not draw.seen:
            draw.seen = needed in draw.raw.decode("utf-8", errors="ignore")
            if not draw.seen:  # in place: the samples sharing a row have the same text, so they are held alike
                logits = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, row)
                np.ctypeslib.as_array(logits, shape=(llama.n_vocab(),))[ends] = -np.inf
        token = draw.sampler.sample(llama._ctx, row)
        if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):
            draw.text, draw.reason = draw.raw, "stop"
            return
        if draw.logprobs is not None:
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama._ctx.ctx, row), shape=(llama.n_vocab(),))
            top = float(np.max(logits))
            draw.logprobs.append(float(logits[token]) - top - float(np.log(np.sum(np.exp(logits - top)))))
        draw.tokens.append(token)
        draw.raw = llama.detokenize(draw.tokens) if draw.tokens[0] == llama.token_bos() else \
            draw.raw + llama.detokenize([token])
        for k, char in enumerate(draw.raw[-3:]):
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    draw.multibyte = num - k
        if draw.multibyte > 0:  # the text ends inside a character: no stop or length check yet
            draw.multibyte -= 1
            if len(draw.tokens) >= limit + _SPARE:
                draw.text, draw.reason = draw.raw, "length"
            return
        hit = next((s for s in stops if s in draw.raw), None)  # the first listed stop string found
        if hit is not None:
            draw.text, draw.reason = draw.raw[: draw.raw.index(hit)], "stop"
        elif len(draw.tokens) >= limit:
            draw.text, draw.reason = draw.raw, "length"

    @staticmethod
    def _end_hold(llama: Any, prompt_len: int, needed: str) -> Any:
        """A logits processor that forbids the end-of-turn tokens while the generated text lacks `needed`."""
        from llama_cpp import LogitsProcessorList

        ends = _end_tokens(llama)
        seen = False  # once the text holds `needed`, later tokens need no decoding

        def hold(input_ids: Any, scores: Any) -> Any:
            nonlocal seen
            if not seen:
                seen = needed in llama.detokenize(list(input_ids[prompt_len:])).decode("utf-8", errors="ignore")
            if not seen:
                scores[ends] = -float("inf")
            return scores

        return LogitsProcessorList([hold])

    def _acquire(self, tokens: list[int]) -> _Slot:
        """The free context sharing the longest prefix with `tokens` (a new one while the pool has room)."""
        with self._cond:
            while True:
                free = [s for s in self._slots if not s.busy]
                best = max(free, key=lambda s: common_prefix(s.tokens, tokens), default=None)
                grow = len(self._slots) + self._loading < self.pool
                if best is not None and (not grow or common_prefix(best.tokens, tokens) > 0 or not best.tokens):
                    best.busy = True
                    return best
                if grow:
                    self._loading += 1
                    break
                self._cond.wait()
        try:
            slot = _Slot(self._new_llama(), busy=True)
        finally:
            with self._cond:
                self._loading -= 1
        with self._cond:
            self._slots.append(slot)
        return slot

    def _release(self, slot: _Slot) -> None:
        with self._cond:
            slot.busy = False
            self._cond.notify()


def _split(group: list[_Draw]) -> list[list[_Draw]]:
    """The unfinished samples of a group, grouped by the token each has just drawn."""
    by_token: dict[int, list[_Draw]] = {}
    for draw in group:
        if draw.reason is None:
            by_token.setdefault(draw.tokens[-1], []).append(draw)
    return list(by_token.values())


def _hold_sequences(llama: Any, seqs: int) -> None:
    """Replace `llama`'s context by one holding `seqs` sequences in a unified KV cache, so that sequences share
    the prompt's cells (llama-cpp-python's constructor sets neither; the parameters are otherwise the same)."""
    from llama_cpp import _internals

    params = llama.context_params
    params.n_seq_max = seqs
    params.kv_unified = True
    llama._ctx.close()
    llama._ctx = llama._stack.enter_context(contextlib.closing(
        _internals.LlamaContext(model=llama._model, params=params, verbose=llama.verbose)))


def _forget(slot: _Slot) -> None:
    """Empty a context's KV cache (every sequence) and what the slot believes it holds."""
    slot.llama._ctx.kv_cache_clear()
    slot.llama.reset()
    slot.tokens = []


def _end_tokens(llama: Any) -> list[int]:
    """The model's end-of-turn token ids: its EOS and the usual chat-template end tokens it has."""
    ends = {llama.token_eos()}
    for piece in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"):
        ids = llama.tokenize(piece.encode(), add_bos=False, special=True)
        if len(ids) == 1:
            ends.add(ids[0])
    return sorted(e for e in ends if 0 <= e < llama.n_vocab())


def _sampler(llama: Any, temperature: float, top_p: float, seed: int) -> Any:
    """The sampler chain `create_completion` builds for the door's settings (`Llama._init_sampler`)."""
    from llama_cpp import _internals

    sampler = _internals.LlamaSampler()
    sampler.add_penalties(n_vocab=llama.n_vocab(), penalty_last_n=llama.last_n_tokens_size, penalty_repeat=1.0,
                          penalty_freq=0.0, penalty_present=0.0)
    if temperature <= 0:
        sampler.add_greedy()
    else:
        sampler.add_top_k(0)
        sampler.add_typical(1.0, 1)
        sampler.add_top_p(top_p, 1)
        sampler.add_min_p(0.0, 1)
        sampler.add_temp(temperature)
        sampler.add_dist(seed)
    return sampler


def _formatters(llama: Any) -> dict[bool, Any]:
    """Jinja formatters from the GGUF's own chat template, with and without the generation prompt."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ModelError("this GGUF carries no chat template (tokenizer.chat_template): use an instruct model", fatal=True)
    eos = llama._model.token_get_text(llama.token_eos()) if llama.token_eos() != -1 else ""
    bos = llama._model.token_get_text(llama.token_bos()) if llama.token_bos() != -1 else ""
    return {flag: Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=flag)
            for flag in (True, False)}


_DOORS: dict[tuple[str, int, int, int, int], LlamaDoor] = {}
_DOORS_LOCK = threading.Lock()


@atexit.register
def _close_doors() -> None:
    """Free the models before interpreter shutdown (llama.cpp's finalizers print tracebacks if run after it)."""
    with _DOORS_LOCK:
        for door in _DOORS.values():
            for slot in door._slots:
                try:
                    slot.llama.close()
                except Exception:  # noqa: BLE001 - best effort at exit
                    pass
        _DOORS.clear()


def get_door(name: str) -> LlamaDoor:
    """The process's door for a `gguf/` name (an alias or a .gguf path), loaded once."""
    path = resolve_gguf(name)
    key = (str(path.resolve()), pool_size(), default_threads(), default_n_ctx(), default_seqs())
    with _DOORS_LOCK:
        if key not in _DOORS:
            _DOORS[key] = LlamaDoor(path, pool=key[1], threads=key[2], n_ctx=key[3], seqs=key[4])
        return _DOORS[key]


def generate(name: str, messages: list[dict[str, Any]], **kwargs: Any) -> LlamaGeneration:
    """Chat completion with a GGUF model in this process (see LlamaDoor.generate)."""
    return get_door(name).generate(messages, **kwargs)
