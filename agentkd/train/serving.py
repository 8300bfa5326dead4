"""`agentkd serve --student RUN`: an OpenAI-compatible server for a run's fine-tuned student.

On a CUDA machine with vLLM installed: `vllm serve RUN/student/merged` (the merged Hugging Face weights); otherwise
llama.cpp's server (`python -m llama_cpp.server`) on RUN/student/student.gguf, exported first when missing. Either
way clients reach it through litellm as `hosted_vllm/NAME` with the server's /v1 address as api_base, and
`agentkd eval --run RUN --student trained --student-api-base URL` runs the run's student there with the short
prompt it was trained on.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from agentkd.errors import AgentKDError
from agentkd.run.layout import RunLayout

Backend = Literal["auto", "vllm", "llama.cpp"]
BACKENDS: tuple[str, ...] = ("auto", "vllm", "llama.cpp")


class StudentServerError(AgentKDError):
    """The student cannot be served as asked (no trained student, vLLM asked for without vLLM or CUDA, ...)."""


class StudentServer(BaseModel):
    """How a run's student will be served: the backend chosen, the model name clients use, the argv to run."""

    backend: str
    name: str
    model: str
    """What the server loads: RUN/student/merged (vLLM) or RUN/student/student.gguf (llama.cpp)."""
    command: list[str]
    host: str
    port: int
    exported: bool = False
    """True when the GGUF was exported just now (it was missing)."""

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


def vllm_usable() -> str | None:
    """None when vLLM can serve here, else why not."""
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install vllm, on a CUDA machine)"
    import torch

    if not torch.cuda.is_available():
        return "CUDA is not available (vLLM serves on a GPU)"
    return None


def choose_backend(requested: str = "auto") -> str:
    """vLLM when asked for or (auto) when it is installed and CUDA is present; llama.cpp otherwise."""
    if requested not in BACKENDS:
        raise StudentServerError(f"unknown backend {requested!r}; choose {', '.join(BACKENDS)}")
    if requested == "llama.cpp":
        return requested
    problem = vllm_usable()
    if requested == "vllm" and problem:
        raise StudentServerError(f"cannot serve with vLLM: {problem}; use --backend llama.cpp (CPU)")
    return "llama.cpp" if problem else "vllm"


def default_name(run: str | Path) -> str:
    """`<run folder name>-student`: what clients call the served student unless --name says otherwise."""
    return f"{Path(run).resolve().name}-student"


def vllm_command(model: Path, name: str, host: str, port: int, max_model_len: int | None = None) -> list[str]:
    """argv of `vllm serve` for a Hugging Face model folder, answering to `name`."""
    script = Path(sys.executable).with_name("vllm")
    executable = str(script) if script.is_file() else shutil.which("vllm") or "vllm"
    command = [executable, "serve", str(model), "--served-model-name", name, "--host", host, "--port", str(port),
               "--dtype", "auto"]
    return command + (["--max-model-len", str(max_model_len)] if max_model_len else [])


def student_server(
    run: str | Path, port: int = 8080, name: str | None = None, backend: str = "auto", host: str = "127.0.0.1",
    threads: int | None = None, n_ctx: int | None = None,
) -> StudentServer:
    """The server for RUN's trained student (RUN/student/merged); exports the GGUF for llama.cpp when missing."""
    layout = RunLayout(run)
    merged = layout.trained_student()  # a clear error when `agentkd train` has not finished
    chosen = choose_backend(backend)
    name = name or default_name(run)
    if chosen == "vllm":
        return StudentServer(backend=chosen, name=name, model=str(merged), host=host, port=port,
                             command=vllm_command(merged, name, host, port, n_ctx))
    from agentkd.models.llama.server import server_command

    exported = False
    if not layout.student_gguf.is_file():
        from agentkd.train.export import export_student

        export_student(layout.root)
        exported = True
    command = server_command(str(layout.student_gguf.resolve()), port, host=host, threads=threads, n_ctx=n_ctx,
                             alias=name)
    return StudentServer(backend=chosen, name=name, model=str(layout.student_gguf), host=host, port=port,
                         command=command, exported=exported)
