"""Self-consistent action generation: sample N actions, try each, act on the most common result."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentkd.codeact.parsing import parse_action
from agentkd.errors import StateNotBranchableError
from agentkd.policies.agreement import code_keys_instead, tally, trial_keys
from agentkd.policies.base import PolicyContext, PolicyOutput
from agentkd.policies.icd import StudentPolicy
from agentkd.policies.registry import BuildContext, build_policy, register_policy
from agentkd.records import Vote
from agentkd.specs import PolicySpec, SpecError


class SelfConsistentSettings(BaseModel):
    """Settings of the `sc` kind."""

    model_config = ConfigDict(extra="forbid")

    student: PolicySpec = Field(description="a `student` or `icd` spec")
    samples: int = Field(5, ge=1)
    temperature: float = Field(0.7, ge=0.0)


class SelfConsistentPolicy:
    """The student samples `n` candidate steps at `temperature`; each is run in a forked copy of the episode's
    worker (tools bound to a copy of the episode's state); erroring or unparseable candidates are dropped and the
    step whose result (the final answer's value, else the printed output) is most common is taken.
    When every candidate fails, the first one is taken so the episode sees the error and can recover."""

    def __init__(self, student: StudentPolicy, n: int = 5, temperature: float = 0.7) -> None:
        if n < 1:
            raise ValueError("self-consistent generation needs n >= 1 samples")
        self.student, self.n, self.temperature = student, n, temperature
        self.name = f"sc{n}:{student.client.model}"
        part = getattr(student, "spec", None)  # None when the student is an object that cannot describe itself
        self.spec = None if part is None else PolicySpec(kind="sc", settings=SelfConsistentSettings(
            student=part, samples=n, temperature=temperature).model_dump(mode="json"))

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        sampled = await self.student.sample(ctx, self.n, self.temperature)
        texts = sampled.texts
        codes = [parse_action(t).code for t in texts]
        mode, warning = "result", None
        try:
            keys = await trial_keys(ctx, codes)
        except StateNotBranchableError as exc:  # e.g. a live connection: vote on the code instead
            (keys, warning), mode = code_keys_instead(codes, ctx, exc), "code"
        vote = Vote(mode=mode, deferrable=False, warning=warning, **tally(keys, 1))
        chosen = vote.winner_index if vote.winner_index is not None else 0
        return PolicyOutput(text=texts[chosen], role=self.student.role, model=sampled.model, usage=sampled.usage,
                            latency_s=sampled.latency_s, candidates=texts, vote=vote)


def build_student_part(spec: PolicySpec, context: BuildContext, owner: str) -> StudentPolicy:
    """The student inside a composite policy; it must be able to sample (a `student` or `icd` kind)."""
    policy = build_policy(spec, context)
    if not isinstance(policy, StudentPolicy):
        raise SpecError(f"the student of a {owner} policy must be of kind 'student' or 'icd', not {spec.kind!r}")
    return policy


@register_policy("sc", SelfConsistentSettings)
def build_self_consistent(settings: SelfConsistentSettings, context: BuildContext) -> SelfConsistentPolicy:
    """The student samples N steps, tries each in a forked worker and takes the most common result."""
    return SelfConsistentPolicy(build_student_part(settings.student, context, "sc"), n=settings.samples,
                                temperature=settings.temperature)
