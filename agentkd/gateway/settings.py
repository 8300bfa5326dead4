"""The gateway's settings (`agentkd gateway` options), as data."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agentkd.evaluate.prices import Price
from agentkd.policies.settings import CascadeOptions
from agentkd.sampling import TEACHER_MAX_TOKENS, copy_field, sampling_field

DEFAULT_PORT = 8300
MAX_BODY_BYTES = 8 * 1024 * 1024
CASCADE_EVAL = "gateway-cascade"
"""The evaluation name the cascade gateway records under: RUN/eval/gateway-cascade.jsonl."""


class CascadeGatewaySettings(BaseModel):
    """How `agentkd gateway --cascade RUN` answers: the student first, the teacher when the student is unsure."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    student: str
    """A GGUF model run in this process (`gguf/qwen2.5-coder-0.5b`, an alias, or a .gguf path)."""
    threshold: float = copy_field(CascadeOptions, "threshold")
    """The confidence (geometric mean probability of the reply's action tokens) the student's reply needs to be
    sent; below it the teacher answers."""
    online: bool = False
    """Add the teacher's answers to RUN's demonstration store as they come (saved to RUN/index on exit)."""
    k: int = Field(3, ge=0)
    """Retrieved teacher replies shown to the student (0: none)."""
    goal_weight: float = Field(0.5, ge=0.0, le=1.0)
    """Retrieval: weight of the conversation's goal against its latest state."""
    max_tokens: int = sampling_field("max_tokens", TEACHER_MAX_TOKENS)
    """Longest student reply (a reply cut there goes to the teacher)."""
    name: str = Field(CASCADE_EVAL, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """The episodes are recorded in RUN/eval/<name>.jsonl, where the preference machinery reads deferred steps."""


class GatewaySettings(BaseModel):
    """How `agentkd gateway` serves and records. The teacher's own API key is never a setting: litellm reads it
    from the provider's environment variable (`OPENAI_API_KEY`, ...), and the gateway never writes it anywhere."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    teacher: str
    """The model that answers: any litellm model string (`openai/gpt-4o-mini`, `hosted_vllm/NAME` with api_base)
    or a local alias."""
    run: Path
    """The run folder the episodes are recorded in (created when missing; a restart continues it)."""
    host: str = "127.0.0.1"
    """Address to bind; 127.0.0.1 serves this machine only."""
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    api_base: str | None = None
    """Base URL of the teacher's OpenAI-compatible server, when it is one."""
    api_key: SecretStr | None = None
    """When set, every request must carry `Authorization: Bearer <api_key>` (else 401)."""
    teacher_price: Price | None = None
    """The teacher's price; None: litellm's cost map for an API model, else the stated default pair."""
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1024)
    """Larger request bodies are refused with 413."""
    success_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Feedback without an explicit `success` counts as a success when its score is at least this."""
    grace_s: float = Field(30.0, ge=0.0)
    """On SIGTERM or Ctrl-C: how long requests in flight may take to finish before they are cut."""
    timeout_s: float = Field(600.0, gt=0.0)
    """Per teacher call."""
    direct_upstream: bool = True
    """Post requests for an `openai/` or `hosted_vllm/` teacher with an `api_base` straight to that server over HTTP
    (False: through litellm, as every other teacher)."""
    cascade: CascadeGatewaySettings | None = None
    """When set, requests are answered by the cascade over `run`'s demonstration store and recorded as an
    evaluation of `run` (RUN/eval/<name>.jsonl); None: the teacher answers and episodes go to `run` itself."""

    def identity(self) -> dict[str, str]:
        """What a run folder records to tell this job from another (run.json `identity`; the evaluation's settings
        file for a cascade)."""
        if self.cascade is not None:
            return {"command": "gateway-cascade", "teacher": self.teacher, "student": self.cascade.student}
        return {"command": "gateway", "teacher": self.teacher}

    def details(self) -> dict[str, object]:
        """What run.json records of this session: no secret (whether an API key is required, not the key)."""
        return {"host": self.host, "port": self.port, "api_base": _without_credentials(self.api_base), "requires_api_key":
                self.api_key is not None, "teacher_price": str(self.teacher_price) if self.teacher_price else None,
                "max_body_bytes": self.max_body_bytes, "success_threshold": self.success_threshold,
                **({"cascade": self.cascade.model_dump(mode="json")} if self.cascade else {})}


def _without_credentials(url: str | None) -> str | None:
    """`url` without a user name and password in it (`https://user:pw@host/v1` -> `https://host/v1`)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
