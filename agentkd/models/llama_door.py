"""In-process GGUF models through llama.cpp (llama-cpp-python): chat formatting, n samples, prefix reuse.

One `LlamaDoor` per model file per process. It holds a small pool of llama.cpp contexts (AGENTKD_LLAMA_POOL,
default 1); each context is used by one call at a time, so concurrent episodes never share a KV cache while
it is being written. A call takes the free context whose cached tokens share the longest prefix with its
prompt: the n samples of one step reuse the prompt's KV cache (only the last prompt token is replayed),
and the next step of the same episode, whose prompt extends the previous one, reuses it too.
"""

from __future__ import annotations

import atexit
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkd.errors import ModelError
from agentkd.models.catalog import resolve_gguf
from agentkd.models.llama_build import check_model_runs
from agentkd.models.llama_settings import DEFAULT_N_CTX, default_n_ctx, default_threads, pool_size
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


@dataclass
class _Slot:
    llama: Any
    busy: bool = False
    tokens: list[int] = field(default_factory=list)


class LlamaDoor:
    """A GGUF model served in this process by a pool of llama.cpp contexts."""

    def __init__(self, path: Path, pool: int = 1, threads: int = 1, n_ctx: int = DEFAULT_N_CTX) -> None:
        self.path = path
        self.pool = pool
        self.threads = threads
        self.n_ctx = n_ctx
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
            return Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.threads,
                         n_threads_batch=self.threads, n_batch=512, logits_all=False, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {self.path}: {exc}", fatal=True) from exc

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> list[int]:
        """The chat template applied; a trailing assistant message is left open to be continued."""
        continue_final = bool(messages) and messages[-1].get("role") == "assistant"
        plain = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
        if continue_final:
            text = self._formatters[False](messages=plain).prompt
            final = plain[-1]["content"]
            cut = text.rfind(final) if final else -1
            if cut < 0:
                raise ModelError("the chat template dropped the partial assistant message; it cannot be continued here")
            text = text[:cut + len(final)]
        else:
            text = self._formatters[True](messages=plain).prompt
        llama = self._slots[0].llama
        tokens = llama.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        bos = llama.token_bos()
        if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:  # the template wrote a BOS itself
            tokens = tokens[1:]
        return tokens

    def generate(self, messages: list[dict[str, Any]], n: int = 1, temperature: float = 0.0, max_tokens: int = TEACHER_MAX_TOKENS,
                 stop: list[str] | None = None, top_p: float = 1.0, seed: int | None = None,
                 end_only_after: str | None = None) -> LlamaGeneration:
        """n completions of a chat (greedy when temperature is 0: one decode, repeated). With `end_only_after`, the
        end-of-turn tokens cannot be sampled until the completion contains that text (it still ends at a stop
        string or max_tokens)."""
        started = time.perf_counter()
        tokens = self.prompt_tokens(messages)
        room = self.n_ctx - len(tokens)
        if room <= 1:
            raise ModelError(f"the prompt has {len(tokens)} tokens and the context window {self.n_ctx}: "
                             "shorten the episode or raise AGENTKD_LLAMA_CTX")
        stop = [s for s in (stop or []) if s]
        base_seed = seed if seed is not None else random.randrange(2**31)
        texts: list[str] = []
        reasons: list[str] = []
        completion_tokens = 0
        cached = 0
        slot = self._acquire(tokens)
        try:
            for i in range(1 if temperature <= 0 else n):
                if i == 0:  # the prompt is counted once; llama.cpp always evaluates its last token again
                    cached = min(common_prefix(slot.tokens, tokens), len(tokens) - 1)
                out = slot.llama.create_completion(
                    prompt=tokens, max_tokens=min(max_tokens, room - 1), temperature=max(temperature, 0.0),
                    top_p=top_p, top_k=0, min_p=0.0, repeat_penalty=1.0, stop=stop, seed=base_seed + i,
                    logits_processor=None if end_only_after is None else  # one per sample: it keeps state
                    self._end_hold(slot.llama, len(tokens), end_only_after))
                choice = out["choices"][0]
                texts.append(choice["text"])
                reasons.append(choice.get("finish_reason") or "stop")
                completion_tokens += int(out["usage"]["completion_tokens"])
                slot.tokens = list(slot.llama._input_ids[: slot.llama.n_tokens])
        except ValueError as exc:
            slot.tokens = []
            raise ModelError(f"llama.cpp refused the request: {exc}") from exc
        finally:
            self._release(slot)
        if len(texts) < n:  # greedy: the n samples are the same decode
            texts, reasons = texts * n, reasons * n
            completion_tokens *= n
        return LlamaGeneration(texts, reasons, len(tokens), completion_tokens, cached, time.perf_counter() - started)

    @staticmethod
    def _end_hold(llama: Any, prompt_len: int, needed: str) -> Any:
        """A logits processor that forbids the end-of-turn tokens while the generated text lacks `needed`."""
        from llama_cpp import LogitsProcessorList

        ends = {llama.token_eos()}
        for piece in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"):
            ids = llama.tokenize(piece.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                ends.add(ids[0])
        ends = [e for e in ends if 0 <= e < llama.n_vocab()]

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


_DOORS: dict[tuple[str, int, int, int], LlamaDoor] = {}
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
    key = (str(path.resolve()), pool_size(), default_threads(), default_n_ctx())
    with _DOORS_LOCK:
        if key not in _DOORS:
            _DOORS[key] = LlamaDoor(path, pool=key[1], threads=key[2], n_ctx=key[3])
        return _DOORS[key]


def generate(name: str, messages: list[dict[str, Any]], **kwargs: Any) -> LlamaGeneration:
    """Chat completion with a GGUF model in this process (see LlamaDoor.generate)."""
    return get_door(name).generate(messages, **kwargs)
