"""Policies: who writes the next step. Each kind is registered with a settings model (see `registry`)."""

from agentkd.policies.base import Policy, PolicyContext, PolicyError, PolicyOutput
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

__all__ = [
    "Policy", "PolicyContext", "PolicyError", "PolicyOutput", "BuildContext", "PolicyKind", "UnknownPolicyError",
    "build_policy", "policy_kind", "policy_kinds", "policy_settings", "register_policy",
    "student_spec", "teacher_spec", "validate_policy_spec", "make_policy",
]


def make_policy(model: str, role: str = "teacher", **client_settings: object) -> Policy:
    """`reference` -> the env's reference solver; anything else -> an LLM policy for that model string
    (`temperature`, `max_tokens`, `api_base` as settings)."""
    if model == "reference":
        return build_policy(teacher_spec(model))
    return build_policy(teacher_spec(model, role=role, **client_settings))
