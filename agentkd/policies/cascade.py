"""Self-consistency cascade: accept the student's action when its samples agree, else ask the teacher."""

from __future__ import annotations

from typing import Any

from agentkd.codeact.normalize import normalize_code
from agentkd.codeact.parsing import parse_action
from agentkd.errors import StateNotBranchableError
from agentkd.models.client import Completion
from agentkd.policies.agreement import code_keys_instead, tally, trial_keys
from agentkd.policies.base import Policy, PolicyContext, PolicyOutput
from agentkd.policies.registry import BuildContext, build_policy, register_policy
from agentkd.policies.repeats import StuckError, repeats_previous
from agentkd.policies.self_consistent import build_student_part
from agentkd.policies.settings import CascadeOptions, CascadeSettings, options_of
from agentkd.policies.student import StudentPolicy
from agentkd.records import Step, Trajectory, Vote
from agentkd.specs import PolicySpec

__all__ = ["CascadeOptions", "CascadePolicy", "CascadeSettings", "build_cascade"]


class CascadePolicy:
    """Student samples `options.samples` actions at `options.temperature`; agreement → act, disagreement → the
    teacher acts. With agreement "confidence", the student samples one action and acts when its confidence reaches
    `options.threshold`.

    agreement: "code" (identical normalised code), "result" (identical results of running each
    candidate in a forked copy of the episode's worker: the final answer's value, else stdout;
    erroring candidates are dropped) or "majority" (identical code for at least `min_agree`).
    `min_agree` defaults to all samples for code/result and to more than half for majority.
    With `online=True`, every step the teacher takes is added to the student's store at once. An accepted action
    that repeats the student's reply to the same state ends the episode as stuck (`on_repeat="stop"`, the default),
    goes to the teacher ("teacher") or is taken ("take").
    Settings come as a `CascadeOptions` or as its fields (`CascadePolicy(student, teacher, samples=5)`).
    """

    def __init__(self, student: StudentPolicy, teacher: Policy, options: CascadeOptions | None = None,
                 **settings: Any) -> None:
        if options is not None and settings:
            raise TypeError("give the cascade's settings as a CascadeOptions or as keywords, not both")
        self.student, self.teacher = student, teacher
        self.options = options_of(CascadeOptions, options) if options is not None else CascadeOptions(**settings)
        self.name = f"cascade:{student.client.model}+{teacher.name}"
        # No spec when a part is an object that cannot describe itself.
        parts = getattr(student, "spec", None), getattr(teacher, "spec", None)
        self.spec = None if None in parts else PolicySpec(kind="cascade", settings=CascadeSettings(
            student=parts[0], teacher=parts[1], **self.options.model_dump()).model_dump(mode="json"))

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        if self.options.agreement == "confidence":
            sampled, vote = await self._confidence_vote(ctx)
        else:
            sampled, vote = await self._sample_vote(ctx)
        texts = sampled.texts
        if (vote.accepted and vote.winner_index is not None and self.options.on_repeat != "take"
                and repeats_previous(texts[vote.winner_index], ctx.steps)):
            if self.options.on_repeat == "stop":
                raise StuckError("the student repeated its reply to the same state; the episode is stuck (a cascade "
                                 "with on_repeat 'teacher' hands such a step to the teacher)",
                                 usage={"student": sampled.usage})
            vote = vote.model_copy(update={"accepted": False, "repeated": True})
        if vote.accepted and vote.winner_index is not None:
            return PolicyOutput(
                text=texts[vote.winner_index], role="student", model=sampled.model, usage=sampled.usage,
                latency_s=sampled.latency_s, candidates=texts, vote=vote,
            )
        teacher_out = await self.teacher.act(ctx)
        if self.options.online and self.student.store is not None:
            self._learn(ctx, teacher_out.text)
        return PolicyOutput(
            text=teacher_out.text, role="teacher", model=teacher_out.model,
            usage=sampled.usage + teacher_out.usage, latency_s=sampled.latency_s + teacher_out.latency_s,
            candidates=texts, vote=vote, role_usage={"student": sampled.usage, "teacher": teacher_out.usage},
        )

    async def _sample_vote(self, ctx: PolicyContext) -> tuple[Completion, Vote]:
        """`samples` candidates compared as `agreement` says."""
        sampled = await self.student.sample(ctx, self.options.samples, self.options.temperature)
        texts = sampled.texts
        mode, warning = self.options.agreement, None
        try:
            keys = await self._vote_keys(ctx, texts)
        except StateNotBranchableError as exc:  # e.g. a live connection: vote on the code instead
            (keys, warning), mode = code_keys_instead([parse_action(t).code for t in texts], ctx, exc), "code"
        return sampled, Vote(mode=mode, warning=warning, **tally(keys, self.options.needed))

    async def _confidence_vote(self, ctx: PolicyContext) -> tuple[Completion, Vote]:
        """One sample at the student's own temperature, accepted when its action's confidence reaches the threshold
        (a sample without code, or without log-probabilities, is deferred)."""
        scored = await self.student.sample_scored(ctx, self.student.client.temperature)
        usable = scored.confidence is not None and parse_action(scored.text).code is not None
        accepted = usable and scored.confidence >= self.options.threshold
        vote = Vote(mode="confidence", accepted=accepted, winner_index=0 if usable else None,
                    winner_count=1 if usable else 0, needed=1, group_sizes=[1] if usable else [],
                    unusable=0 if usable else 1, confidence=scored.confidence, threshold=self.options.threshold)
        return scored.completion, vote

    async def _vote_keys(self, ctx: PolicyContext, texts: list[str]) -> list[str | None]:
        parsed = [parse_action(t) for t in texts]
        if self.options.agreement != "result":
            return [normalize_code(p.code) if p.code else None for p in parsed]
        return await trial_keys(ctx, [p.code for p in parsed])

    def _learn(self, ctx: PolicyContext, teacher_text: str) -> None:
        from agentkd.store import records_from_trajectory

        parsed = parse_action(teacher_text)
        if parsed.code is None:
            return
        step = Step(index=len(ctx.steps), role="teacher", output=teacher_text, thought=parsed.thought,
                    action=parsed.code)
        partial = Trajectory(task=ctx.task, policy=self.teacher.name, steps=[*ctx.steps, step], success=True)
        records = records_from_trajectory(partial)
        if records:
            self.student.store.add_records(records[-1:])


@register_policy("cascade", CascadeSettings)
def build_cascade(settings: CascadeSettings, context: BuildContext) -> CascadePolicy:
    """The student acts when its samples agree; otherwise that one step goes to the teacher."""
    return CascadePolicy(build_student_part(settings.student, context, "cascade"),
                         build_policy(settings.teacher, context), settings)
