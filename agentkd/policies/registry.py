"""The policy registry: each policy kind registered by name with a pydantic settings model.

A `PolicySpec` (kind + settings, nested for composite policies) is what the CLI, `CascadedAgent`,
the pipeline and `eval` build from, and what run.json and each trajectory record. Adding a kind is
its own module (a settings model and a `@register_policy` builder) plus one line in `BUILTIN_MODULES`;
a user may also call `register_policy` from their own code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from agentkd.policies.base import Policy
from agentkd.run.layout import TRAINED_NAMES, RunLayout
from agentkd.specs import PolicySpec, SpecError

BUILTIN_MODULES = (
    "agentkd.policies.reference",
    "agentkd.policies.llm",
    "agentkd.policies.student",
    "agentkd.policies.self_consistent",
    "agentkd.policies.cascade",
)
"""Modules that register the built-in kinds; imported the first time a kind is looked up."""


class UnknownPolicyError(SpecError):
    """A policy spec names a kind nobody registered."""


@dataclass
class BuildContext:
    """What building a policy may need beyond its spec: the run folder it belongs to (for `trained`
    students and the run's demonstration store) or a demonstration store given directly."""

    run: RunLayout | None = None
    store: Any = None
    _loaded_store: Any = field(default=None, repr=False)

    def demo_store(self) -> Any:
        """The store given, else the run's `agentkd index` store (loaded once)."""
        if self.store is not None:
            return self.store
        if self._loaded_store is None:
            if self.run is None:
                raise SpecError("a policy with demonstrations needs a run folder with an index "
                                "(`agentkd index --run RUN`) or a DemoStore passed in")
            from agentkd.store import DemoStore

            self._loaded_store = DemoStore.load(self.run.index_dir)
        return self._loaded_store

    def model(self, name: str, api_base: str | None = None) -> str:
        """A model string with `trained` / `trained-dpo` resolved to this run's fine-tuned student: its GGUF
        through llama.cpp (`gguf/`) when `agentkd train` exported one, else its weights in process (`hf/`); with
        `api_base`, the student served there (`agentkd serve --student RUN`): `hosted_vllm/<the server's model>`."""
        if name not in TRAINED_NAMES:
            return name
        if api_base:
            from agentkd.models.llama.server import served_models

            served = served_models(api_base)
            if len(served) != 1:
                raise SpecError(f"the server at {api_base} serves {served or 'no model'}; `{name}` with an api_base "
                                "needs a server of one model (`agentkd serve --student RUN`), or pass "
                                "--student hosted_vllm/NAME")
            return f"hosted_vllm/{served[0]}"
        if self.run is None:
            raise SpecError(f"the student {name!r} means a run's fine-tuned student; give the run folder")
        folder = self.run.trained_model(name)
        if self.run.gguf_of(name).is_file():
            return f"gguf/{self.run.gguf_of(name).resolve()}"
        return f"hf/{folder.resolve()}"


Builder = Callable[[Any, BuildContext], Policy]


@dataclass(frozen=True)
class PolicyKind:
    name: str
    settings: type[BaseModel]
    build: Builder
    help: str


_KINDS: dict[str, PolicyKind] = {}
_loaded_builtins = False


def register_policy(name: str, settings: type[BaseModel], help: str = "") -> Callable[[Builder], Builder]:
    """Decorator registering `build(settings, context) -> Policy` as the policy kind `name`."""

    def decorate(build: Builder) -> Builder:
        _KINDS[name] = PolicyKind(name, settings, build, help or (build.__doc__ or "").strip().split("\n")[0])
        return build

    return decorate


def policy_kinds() -> dict[str, PolicyKind]:
    """Every registered kind, by name."""
    global _loaded_builtins
    if not _loaded_builtins:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded_builtins = True
    return dict(_KINDS)


def policy_kind(name: str) -> PolicyKind:
    kinds = policy_kinds()
    if name not in kinds:
        raise UnknownPolicyError(f"unknown policy kind {name!r}; registered kinds: {', '.join(sorted(kinds))}")
    return kinds[name]


def policy_settings(spec: PolicySpec | dict[str, Any]) -> BaseModel:
    """The validated settings model of `spec` (nested specs validated too); SpecError naming the field."""
    spec = PolicySpec.model_validate(spec)
    kind = policy_kind(spec.kind)
    try:
        settings = kind.settings.model_validate(spec.settings)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"invalid settings for policy kind {spec.kind!r}: {problems}") from exc
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, PolicySpec):
            setattr(settings, name, validate_policy_spec(value))
    return settings


def validate_policy_spec(spec: PolicySpec | dict[str, Any]) -> PolicySpec:
    """`spec` with its settings validated and every default filled in (what gets recorded)."""
    spec = PolicySpec.model_validate(spec)
    settings = policy_settings(spec)
    return PolicySpec(kind=spec.kind, settings=settings.model_dump(mode="json"))


def build_policy(spec: PolicySpec | dict[str, Any], context: BuildContext | None = None) -> Policy:
    """Make the policy a spec describes. The policy's `spec` is the validated spec (with defaults)."""
    spec = PolicySpec.model_validate(spec)
    settings = policy_settings(spec)
    policy = policy_kind(spec.kind).build(settings, context or BuildContext())
    policy.spec = PolicySpec(kind=spec.kind, settings=settings.model_dump(mode="json"))  # type: ignore[attr-defined]
    return policy


def teacher_spec(model: str, **settings: Any) -> PolicySpec:
    """`reference` -> the environment's reference solver; anything else -> an LLM teacher for that model."""
    if model == "reference":
        return PolicySpec(kind="reference")
    return validate_policy_spec(PolicySpec(kind="llm", settings={"model": model, **settings}))


def student_spec(model: str, demos: bool, **settings: Any) -> PolicySpec:
    """A student acting alone (`demos=False`) or with retrieved teacher demonstrations.

    The one place the rule lives: a student fine-tuned by agentkd (`trained`, or a folder `agentkd train`
    wrote) is run with the short prompt it was trained on and without demonstrations."""
    from agentkd.run.layout import is_trained_student

    if is_trained_student(model):
        demos = False
        settings = {k: v for k, v in settings.items() if k not in ("k", "goal_weight")}
    return validate_policy_spec(PolicySpec(kind="icd" if demos else "student", settings={"model": model, **settings}))
