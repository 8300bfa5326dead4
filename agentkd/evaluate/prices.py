"""What tokens cost: a price per role, cache-aware and list $, and where each price comes from.

A `Price` is $ per 1M tokens: the list prompt price, the completion price, and what a prompt token read from the
provider's prompt cache (and one written to it) costs. Every $ figure agentkd reports comes in two:

- cache-aware $: prompt tokens the server read from its cache (`Usage.cached_prompt_tokens`) at the cache-read
  price, tokens written to it (`Usage.cache_write_tokens`) at the cache-write price, the rest at list;
- list $: every prompt token at the list price (what a provider without prompt caching bills).

Where a role's price comes from (`resolve_prices`): a price stated for the role (`--teacher-price`), else
litellm's cost map for an API model string (`litellm.model_cost`, read from the copy installed with litellm:
LITELLM_LOCAL_MODEL_COST_MAP=True, never the network), else the stated default pair of `StatedPrices`: the
in-context distillation paper's (`PAPER_PRICES`) for local models, unmapped servers and the reference teacher.

Importing this module loads pydantic only (the command line reads `StatedPrices` while it parses) and sets
LITELLM_LOCAL_MODEL_COST_MAP=True unless set; litellm is imported when an API model's price is looked up.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentkd.records import Usage
from agentkd.specs import PolicySpec

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm, when loaded, reads its installed map

PER = 1e6
"""Prices are $ per this many tokens."""


class Price(BaseModel):
    """$ per 1M tokens for one model: list prompt and completion prices, and the prompt cache's read and write
    prices. Given as numbers `(prompt, completion[, cached_prompt[, cache_write]])` or text `"3,15,0.3"`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: float = Field(ge=0.0)
    """$ per 1M prompt tokens at list price."""
    completion: float = Field(ge=0.0)
    """$ per 1M completion tokens."""
    cached_prompt: float | None = Field(None, ge=0.0)
    """$ per 1M prompt tokens the server read from its prompt cache; None: the list prompt price (no discount)."""
    cache_write: float | None = Field(None, ge=0.0)
    """$ per 1M prompt tokens written to the prompt cache (Anthropic bills them above list); None: the list prompt
    price."""
    source: str = "stated"
    """Where the numbers come from: `litellm:<key>` (litellm's cost map), `paper` (the in-context distillation
    paper's pair) or `stated` (given by hand, e.g. `--teacher-price`)."""

    @model_validator(mode="before")
    @classmethod
    def _from_numbers(cls, data: Any) -> Any:
        if isinstance(data, str):
            try:
                data = [float(x) for x in data.split(",")]
            except ValueError:
                raise ValueError(f"a price is 2 to 4 numbers, $ per 1M prompt,completion[,cached-read[,cache-write]] "
                                 f"tokens, e.g. 3,15,0.3; got {data!r}") from None
        if isinstance(data, (tuple, list)):
            if not 2 <= len(data) <= 4:
                raise ValueError(f"a price is 2 to 4 numbers, $ per 1M prompt,completion[,cached-read[,cache-write]] "
                                 f"tokens; got {len(data)}")
            return dict(zip(("prompt", "completion", "cached_prompt", "cache_write"), data))
        return data

    def dollars(self, usage: Usage) -> float:
        """Cache-aware $: cached prompt tokens at the cache-read price, written ones at the cache-write price."""
        cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        fresh = usage.prompt_tokens - cached - written
        read = self.prompt if self.cached_prompt is None else self.cached_prompt
        write = self.prompt if self.cache_write is None else self.cache_write
        return (fresh * self.prompt + cached * read + written * write + usage.completion_tokens * self.completion) / PER

    def list_dollars(self, usage: Usage) -> float:
        """List $: every prompt token at the list prompt price."""
        return (usage.prompt_tokens * self.prompt + usage.completion_tokens * self.completion) / PER

    def __str__(self) -> str:
        """The numbers as `--teacher-price` takes them, e.g. `3,15,0.3`."""
        numbers = [self.prompt, self.completion, self.cached_prompt, self.cache_write]
        while numbers[-1] is None:
            numbers.pop()
        return ",".join("" if n is None else f"{n:g}" for n in numbers)

    def describe(self) -> str:
        """One line for tables and reports: `$3 / $15 per 1M prompt / completion tokens, cached reads $0.30 (the
        in-context distillation paper's pair)`."""
        text = f"{_money(self.prompt)} / {_money(self.completion)} per 1M prompt / completion tokens"
        text += (", cached reads at list (no discount)" if self.cached_prompt is None
                 else f", cached reads {_money(self.cached_prompt)}")
        if self.cache_write is not None:
            text += f", cache writes {_money(self.cache_write)}"
        where = {"paper": "the in-context distillation paper's pair", "stated": "stated"}
        source = where.get(self.source) or (f"litellm's cost map, {self.source.removeprefix('litellm:')}"
                                            if self.source.startswith("litellm:") else self.source)
        return f"{text} ({source})"


def _money(value: float) -> str:
    """$3, $0.40, $1.25, $0.075."""
    if value == int(value):
        return f"${value:g}"
    return f"${value:.2f}" if round(value, 2) == value else f"${value:g}"


PAPER_PRICES: dict[str, Price] = {
    "teacher": Price(prompt=3.0, completion=15.0, cached_prompt=0.30, source="paper"),
    "student": Price(prompt=0.40, completion=1.60, cached_prompt=0.10, source="paper"),
}
"""The in-context distillation paper's pair (teacher Claude Sonnet 4.5, student GPT-4.1-mini), $ per 1M tokens,
with their cached-read prices: the stated default for models litellm's cost map has no price for."""

ZERO = Price(prompt=0.0, completion=0.0, source="stated")


class StatedPrices(BaseModel):
    """The prices of models litellm's cost map does not price (local models, a model on your own server, the
    reference teacher). A price given here (`--teacher-price`, `--student-price`) is used for its role whatever the
    model."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    teacher: Price = PAPER_PRICES["teacher"]
    """The teacher's price whatever its model: $ per 1M prompt and completion tokens, then optionally cached
    reads and cache writes, e.g. 3,15,0.3. Not given: litellm's cost map for an API model, else this default
    (the in-context distillation paper's teacher pair; the reference teacher's tokens are counted as a model
    teacher would spend them)."""
    student: Price = PAPER_PRICES["student"]
    """The student's price whatever its model, likewise. Not given: litellm's cost map for an API model, else
    this default (the in-context distillation paper's student pair)."""


class PriceSettings(BaseModel):
    """The price of each role and the model sizes a cost table is computed with."""

    model_config = ConfigDict(extra="forbid")

    prices: dict[str, Price] = Field(default_factory=lambda: dict(PAPER_PRICES))
    """role -> its price; a role left out costs $0."""
    params: dict[str, float] = Field(default_factory=dict)
    """role -> parameters of the model acting in that role (for FLOPs); a role left out counts 0 FLOPs."""

    def price(self, role: str) -> Price:
        return self.prices.get(role, ZERO)

    def dollars(self, role: str, usage: Usage) -> float:
        """Cache-aware $ of `usage` spent in `role`."""
        return self.price(role).dollars(usage)

    def list_dollars(self, role: str, usage: Usage) -> float:
        """$ of `usage` spent in `role` with every prompt token at list price."""
        return self.price(role).list_dollars(usage)

    def flops(self, role: str, usage: Usage) -> float:
        return 2.0 * self.params.get(role, 0.0) * (usage.prompt_tokens + usage.completion_tokens)


def is_priced_by_litellm(model: str) -> bool:
    """Whether `model` may be in litellm's cost map: not the reference solver, a trained student or a local
    (`hf/`, `gguf/`, alias) model."""
    from agentkd.models.client import is_local
    from agentkd.policies.reference import REFERENCE_MODEL
    from agentkd.run.layout import is_trained_student

    return not (model == REFERENCE_MODEL or is_trained_student(model) or is_local(model))


def litellm_price(model: str) -> Price | None:
    """The price litellm's cost map holds for an API model string (e.g. `anthropic/claude-sonnet-4-5`,
    `openai/gpt-4.1-mini`), read from the map installed with litellm (never the network); None for models it does
    not price and for local models."""
    if not is_priced_by_litellm(model):
        return None
    import litellm

    key, info = _cost_map_entry(litellm, model)
    if info is None:
        return None
    prompt, completion = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if prompt is None or completion is None:
        return None

    def per_million(value: Any) -> float | None:
        return None if value is None else round(float(value) * PER, 9)

    return Price(prompt=per_million(prompt), completion=per_million(completion),
                 cached_prompt=per_million(info.get("cache_read_input_token_cost")),
                 cache_write=per_million(info.get("cache_creation_input_token_cost")),
                 source=f"litellm:{key}")


def _cost_map_entry(litellm: Any, model: str) -> tuple[str, dict[str, Any] | None]:
    """(key, entry) of `model` in `litellm.model_cost`: the string as given, without its provider prefix, or the key
    litellm's own lookup names; (model, None) when the map has none."""
    candidates = [model]
    try:
        name, provider, *_ = litellm.get_llm_provider(model)
        candidates += [name, f"{provider}/{name}"]
    except Exception:  # litellm cannot tell the provider: only the string as given
        pass
    try:
        candidates.append(litellm.get_model_info(model).get("key"))
    except Exception:  # not in the map: litellm raises for unmapped models
        pass
    for key in candidates:
        entry = litellm.model_cost.get(key) if key else None
        if isinstance(entry, dict) and entry.get("input_cost_per_token") is not None:
            return key, entry
    return model, None


def role_models(spec: PolicySpec | dict[str, Any]) -> dict[str, str]:
    """role -> the model acting in it, read from a policy spec (a cascade's teacher and student, an `llm`
    policy's role, `reference` for the scripted teacher); kinds it does not know give no entry."""
    data = spec.model_dump(mode="json") if isinstance(spec, PolicySpec) else spec
    kind, settings = data.get("kind"), data.get("settings") or {}
    if kind == "reference":
        from agentkd.policies.reference import REFERENCE_MODEL

        return {"teacher": REFERENCE_MODEL}
    if kind == "llm" and settings.get("model"):
        return {settings.get("role", "teacher"): settings["model"]}
    if kind in ("student", "icd"):
        from agentkd.policies.settings import StudentSettings

        return {"student": settings.get("model") or StudentSettings().model}
    out: dict[str, str] = {}
    for part in ("student", "teacher"):
        if isinstance(settings.get(part), dict):
            out.update(role_models(settings[part]))
    return out


def resolve_prices(models: dict[str, str], stated: dict[str, Price] | None = None,
                   roles: Iterable[str] = ("teacher", "student")) -> PriceSettings:
    """The price of each role: `stated` for it, else litellm's cost map for its model (`models`: role -> model
    string), else the default stated pair (StatedPrices: the paper's)."""
    stated = stated or {}
    defaults = StatedPrices()
    prices: dict[str, Price] = {}
    for role in dict.fromkeys([*roles, *models, *stated]):
        price = stated.get(role)
        if price is None and role in models:
            price = litellm_price(models[role])
        if price is None:
            price = getattr(defaults, role, None) if role in StatedPrices.model_fields else None
        if price is not None:
            prices[role] = price
    return PriceSettings(prices=prices)
