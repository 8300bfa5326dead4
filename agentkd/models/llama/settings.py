"""llama.cpp settings shared by the in-process door and the server, read from the environment.

- `AGENTKD_LLAMA_THREADS`: CPU threads per model copy (default: half the usable cores divided among the copies,
  at most 8).
- `AGENTKD_LLAMA_POOL`: model copies per process for concurrent episodes (default 1: one copy, calls
  serialised; see the README for the measurement behind it).
- `AGENTKD_LLAMA_CTX`: context window in tokens (default `DEFAULT_N_CTX`, capped at what the model was trained on).
- `AGENTKD_LLAMA_SEQS`: sampled sequences decoded together in one batch, sharing the prompt's KV cache (default
  `DEFAULT_SEQS`; 1: the n samples of a call are decoded one after another).
"""

from __future__ import annotations

import os

from agentkd.errors import AgentKDError

DEFAULT_N_CTX = 8192
"""Context window in tokens when AGENTKD_LLAMA_CTX is not set."""
DEFAULT_SEQS = 8
"""Sampled sequences decoded together when AGENTKD_LLAMA_SEQS is not set."""


class LlamaSettingsError(AgentKDError):
    """An AGENTKD_LLAMA_* variable does not hold a positive integer."""


def _positive(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise LlamaSettingsError(f"{name}={raw!r}: give a positive whole number (or unset it for the default {default})")
    return value


def pool_size() -> int:
    """Model copies per process (AGENTKD_LLAMA_POOL, default 1)."""
    return _positive("AGENTKD_LLAMA_POOL", 1)


def default_threads() -> int:
    """Threads per model copy (AGENTKD_LLAMA_THREADS; default: usable cores / 2 / copies, 1..8). On a shared
    2-core machine 2 threads collapse when another process takes a core (measured: 6.5 vs 58 tok/s)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return _positive("AGENTKD_LLAMA_THREADS", max(1, min(8, cores // 2 // pool_size())))


def default_n_ctx() -> int:
    """Context window in tokens (AGENTKD_LLAMA_CTX, default DEFAULT_N_CTX)."""
    return _positive("AGENTKD_LLAMA_CTX", DEFAULT_N_CTX)


def default_seqs() -> int:
    """Sequences decoded together per batch (AGENTKD_LLAMA_SEQS, default DEFAULT_SEQS; 1 decodes samples one by
    one)."""
    return _positive("AGENTKD_LLAMA_SEQS", DEFAULT_SEQS)
