"""The command line of llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`) for a GGUF model."""

from __future__ import annotations

import importlib.util
import os
import sys

from agentkd.errors import AgentKDError
from agentkd.models.distribution.catalog import is_alias, resolve_gguf
from agentkd.models.llama.build import check_model_runs
from agentkd.models.llama.settings import default_n_ctx, default_threads

SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")


class ServerUnavailableError(AgentKDError):
    """llama.cpp's server cannot start here (its extra dependencies are missing)."""


def server_command(name: str, port: int, host: str = "127.0.0.1", threads: int | None = None,
                   n_ctx: int | None = None, alias: str | None = None) -> list[str]:
    """argv for serving `name` (an alias or a .gguf path) on host:port; the served model name is `alias`, else the
    alias `name` (or the file's name), so clients use `hosted_vllm/<that name>`."""
    missing = [m for m in ("llama_cpp", *SERVER_MODULES) if importlib.util.find_spec(m) is None]
    if missing:
        raise ServerUnavailableError(
            f"llama.cpp's server needs {', '.join(missing)}: pip install 'llama-cpp-python[server]' "
            "(./setup.sh installs it)")
    path = resolve_gguf(name)
    check_model_runs(path)
    threads = threads or default_threads()
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", alias or served_name(name),
            "--host", host, "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--n_ctx", str(n_ctx or default_n_ctx()), "--logits_all", "False", "--verbose", "False"]


def served_name(name: str) -> str:
    """The model name the server answers to: the alias, or the .gguf file's name."""
    return name.lower() if is_alias(name) else os.path.basename(name)


def served_models(api_base: str, timeout_s: float = 10.0) -> list[str]:
    """The model names an OpenAI-compatible server answers to (GET {api_base}/models: vLLM, llama.cpp, ...)."""
    import json
    import urllib.request

    url = api_base.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            listing = json.load(answer)
    except (OSError, ValueError) as exc:
        raise ServerUnavailableError(f"no OpenAI-compatible server answers at {url} ({exc}); start it, e.g. "
                                     "`agentkd serve --student RUN`, and pass its /v1 address") from exc
    return [str(m["id"]) for m in listing.get("data", []) if isinstance(m, dict) and "id" in m]
