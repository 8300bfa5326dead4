"""In-process Hugging Face causal LMs: alias resolution, GGUF materialisation, generation."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkd.errors import ModelError
from agentkd.models.hf.prefix_cache import PrefixCache, extend, reuse_enabled
from agentkd.sampling import TEACHER_MAX_TOKENS

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ALIASES = {"smollm2-135m": "smollm2-135m-instruct", "smollm2-135m-instruct": "smollm2-135m-instruct"}

_LOCK = threading.Lock()
_LOADED: dict[str, tuple[Any, Any, threading.Lock]] = {}
_PREFIXES: dict[str, PrefixCache] = {}  # per loaded model: the KV cache of the last sequence it encoded


def materialize_smollm2() -> Path:
    """The packaged SmolLM2 GGUF as a normal (trainable) HF folder, made once per cache."""
    from agentkd.models.hf.materialize import materialize

    return materialize("smollm2-135m")


def resolve_local_model(name: str) -> Path:
    """A trainable alias (`smollm2-135m`, `qwen2.5-coder-0.5b`, ...: see agentkd.models.hf.materialize) → its
    materialised folder; otherwise a local folder with a config.json."""
    from agentkd.models.hf.materialize import TRAINABLE, materialize, trainable

    if trainable(name) is not None:
        return materialize(name)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return path
    raise ModelError(
        f"unknown local model {name!r}: use an alias ({', '.join(TRAINABLE)}) or a folder holding a "
        "Hugging Face model (config.json + weights); nothing is downloaded at run time"
    )


def _load(name: str) -> tuple[Any, Any, threading.Lock, PrefixCache]:
    """(model, tokenizer, lock, prefix cache): the lock guards the model's calls and its prefix cache."""
    path = str(resolve_local_model(name))
    with _LOCK:
        if path not in _LOADED:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
            if torch.cuda.is_available():
                model = model.to("cuda")
            model.eval()
            tokenizer = AutoTokenizer.from_pretrained(path)
            _LOADED[path] = (model, tokenizer, threading.Lock())
            _PREFIXES[path] = PrefixCache()
        return (*_LOADED[path], _PREFIXES[path])


def drop_prefix_cache(name: str) -> None:
    """Forget the KV cache a local model keeps of its last prompt (the next call encodes its prompt in full)."""
    _model, _tokenizer, lock, prefix = _load(name)
    with lock:
        prefix.drop()


@dataclass
class Generation:
    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached_tokens: int = 0
    """Prompt tokens served from the KV cache of an earlier call (not encoded again)."""


def _truncate_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def generate(
    name: str,
    messages: list[dict[str, Any]],
    n: int = 1,
    temperature: float = 0.0,
    max_tokens: int = TEACHER_MAX_TOKENS,
    stop: list[str] | None = None,
    top_p: float = 1.0,
    seed: int | None = None,
) -> Generation:
    """Chat completion with a local model. A trailing assistant message is continued, not restarted.

    The KV cache of the longest prompt prefix shared with the model's previous call is reused (see
    `agentkd.models.hf.prefix_cache`; AGENTKD_HF_PREFIX_CACHE=0 turns it off)."""
    import torch

    model, tokenizer, lock, prefix = _load(name)
    stop = [s for s in (stop or []) if s]
    continue_final = bool(messages) and messages[-1].get("role") == "assistant"
    encoded = tokenizer.apply_chat_template(
        messages,
        add_generation_prompt=not continue_final,
        continue_final_message=continue_final,
        return_tensors="pt",
        return_dict=True,
    )
    encoded = {k: v.to(model.device) for k, v in encoded.items()}
    prompt_len = encoded["input_ids"].shape[1]
    sample = temperature > 0
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_tokens,
        "do_sample": sample,
        "num_return_sequences": n,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }
    if sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    if stop:
        kwargs.update(stop_strings=stop, tokenizer=tokenizer)
    if not sample and n > 1:
        kwargs["num_return_sequences"] = 1
    reuse = reuse_enabled()
    cached = 0
    started = time.perf_counter()
    with lock, torch.inference_mode():
        if seed is not None:
            torch.manual_seed(seed)
        if reuse and prefix.supported(model) and prompt_len > 1:
            output, cached = _generate_reusing(model, prefix, encoded["input_ids"], kwargs)
        else:
            output = model.generate(**encoded, **kwargs)
    if output.shape[0] < n:  # greedy: n identical samples
        output = output.repeat(n, 1)
    texts, reasons, completion_tokens = [], [], 0
    for row in output:
        new = row[prompt_len:]
        eos_ids = {tokenizer.eos_token_id, kwargs["pad_token_id"]}
        length = next((i for i, t in enumerate(new.tolist()) if t in eos_ids), len(new))
        completion_tokens += length
        text, stopped = _truncate_at_stop(tokenizer.decode(new[:length], skip_special_tokens=True), stop)
        texts.append(text)
        reasons.append("stop" if stopped or length < len(new) else "length")
    return Generation(texts, reasons, prompt_len, completion_tokens, time.perf_counter() - started, cached)


def _generate_reusing(model: Any, prefix: PrefixCache, input_ids: Any, kwargs: dict[str, Any]) -> tuple[Any, int]:
    """`model.generate` starting from the cached prefix of the prompt; the rows of several samples share one
    encoding of the prompt (all but its last token). Returns (output ids, prompt tokens served from the cache).
    Runs under the model's lock."""
    import torch

    rows = kwargs["num_return_sequences"]
    prompt_len = input_ids.shape[1]
    cache, cached = prefix.take(model, input_ids[0].tolist())
    if rows > 1:
        extend(model, cache, input_ids, prompt_len - 1)  # once, then copied to every sample's row
        cache.batch_repeat_interleave(rows)
        input_ids = input_ids.repeat(rows, 1)
    output = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        past_key_values=cache,
        **{**kwargs, "num_return_sequences": 1},
    )
    if rows > 1:
        cache.batch_select_indices(torch.tensor([0], device=output.device))
    prefix.keep(cache, output[0].tolist())
    return output, cached
