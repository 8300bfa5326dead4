"""Policies: who writes the next step. Each kind is registered with a settings model (see `registry`).

The names below are imported on first use, so that `agentkd.policies.settings` and `agentkd.policies.names`
load without the environment API (the command line reads them while it parses its arguments).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "agentkd.policies.base": ("Policy", "PolicyContext", "PolicyError", "PolicyOutput"),
    "agentkd.policies.registry": ("BuildContext", "PolicyKind", "UnknownPolicyError", "build_policy", "policy_kind",
                                  "policy_kinds", "policy_settings", "register_policy", "student_spec",
                                  "teacher_spec", "validate_policy_spec"),
    "agentkd.policies.names": ("PolicyNameError", "parse_policy_name", "policy_name"),
    "agentkd.policies.settings": ("CascadeOptions", "SelfConsistentOptions"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [*_MODULE_OF, "make_policy"]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkd.policies' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def make_policy(model: str, role: str = "teacher", **client_settings: object) -> Policy:
    """`reference` -> the env's reference solver; anything else -> an LLM policy for that model string
    (`temperature`, `max_tokens`, `api_base` as settings)."""
    from agentkd.policies.registry import build_policy, teacher_spec

    if model == "reference":
        return build_policy(teacher_spec(model))
    return build_policy(teacher_spec(model, role=role, **client_settings))


if TYPE_CHECKING:
    from agentkd.policies.base import Policy, PolicyContext, PolicyError, PolicyOutput
    from agentkd.policies.names import PolicyNameError, parse_policy_name, policy_name
    from agentkd.policies.registry import (
        BuildContext,
        PolicyKind,
        UnknownPolicyError,
        build_policy,
        policy_kind,
        policy_kinds,
        policy_settings,
        register_policy,
        student_spec,
        teacher_spec,
        validate_policy_spec,
    )
    from agentkd.policies.settings import CascadeOptions, SelfConsistentOptions
