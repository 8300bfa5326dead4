"""Self-consistent action generation: sample N actions, try each, act on the most common result."""

from __future__ import annotations

from typing import Any

from agentkd.codeact.parsing import parse_action
from agentkd.errors import StateNotBranchableError
from agentkd.policies.agreement import code_keys_instead, tally, trial_keys
from agentkd.policies.base import PolicyContext, PolicyOutput
from agentkd.policies.registry import BuildContext, build_policy, register_policy
from agentkd.policies.settings import SelfConsistentOptions, SelfConsistentSettings, options_of
from agentkd.policies.student import StudentPolicy
from agentkd.records import Vote
from agentkd.specs import PolicySpec, SpecError

__all__ = ["SelfConsistentOptions", "SelfConsistentPolicy", "SelfConsistentSettings", "build_self_consistent",
           "build_student_part"]


class SelfConsistentPolicy:
    """The student samples `options.samples` candidate steps at `options.temperature`; each is run in a forked copy
    of the episode's worker (tools bound to a copy of the episode's state); erroring or unparseable candidates are
    dropped and the step whose result (the final answer's value, else the printed output) is most common is taken.
    When every candidate fails, the first one is taken so the episode sees the error and can recover.
    Settings come as a `SelfConsistentOptions` or as its fields (`SelfConsistentPolicy(student, samples=5)`)."""

    def __init__(self, student: StudentPolicy, options: SelfConsistentOptions | None = None, **settings: Any) -> None:
        if options is not None and settings:
            raise TypeError("give the settings as a SelfConsistentOptions or as keywords, not both")
        self.student = student
        self.options = (options_of(SelfConsistentOptions, options) if options is not None
                        else SelfConsistentOptions(**settings))
        self.name = f"sc{self.options.samples}:{student.client.model}"
        part = getattr(student, "spec", None)  # None when the student is an object that cannot describe itself
        self.spec = None if part is None else PolicySpec(kind="sc", settings=SelfConsistentSettings(
            student=part, **self.options.model_dump()).model_dump(mode="json"))

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        sampled = await self.student.sample(ctx, self.options.samples, self.options.temperature)
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
    return SelfConsistentPolicy(build_student_part(settings.student, context, "sc"), settings)
