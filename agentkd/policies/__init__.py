"""Policies: who writes the next step."""

from agentkd.policies.base import Policy, PolicyContext, PolicyError, PolicyOutput
from agentkd.policies.llm import LLMPolicy
from agentkd.policies.reference import ReferencePolicy, replay_reference

__all__ = ["Policy", "PolicyContext", "PolicyError", "PolicyOutput", "LLMPolicy", "ReferencePolicy", "replay_reference"]


def make_policy(spec: str, role: str = "teacher", **client_kwargs: object) -> Policy:
    """`reference` → the env's reference solver; anything else → an LLM policy for that model string."""
    from agentkd.models.client import ModelClient

    if spec == "reference":
        return ReferencePolicy()
    return LLMPolicy(ModelClient(spec, **client_kwargs), role=role)  # type: ignore[arg-type]
