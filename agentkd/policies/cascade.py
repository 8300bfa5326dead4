"""Self-consistency cascade: accept the student's action when its samples agree, else ask the teacher."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentkd.codeact.normalize import normalize_code
from agentkd.codeact.parsing import parse_action
from agentkd.errors import StateNotBranchableError
from agentkd.policies.agreement import AgreementMode, code_keys_instead, tally, trial_keys
from agentkd.policies.base import Policy, PolicyContext, PolicyOutput
from agentkd.policies.icd import StudentPolicy
from agentkd.policies.registry import BuildContext, build_policy, register_policy
from agentkd.policies.self_consistent import build_student_part
from agentkd.records import Step, Trajectory, Vote
from agentkd.specs import PolicySpec


class CascadeSettings(BaseModel):
    """Settings of the `cascade` kind."""

    model_config = ConfigDict(extra="forbid")

    student: PolicySpec = Field(description="a `student` or `icd` spec")
    teacher: PolicySpec = Field(description="the policy a step is deferred to")
    samples: int = Field(3, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    agreement: AgreementMode = "result"
    min_agree: int | None = Field(None, ge=1)
    online: bool = False

    @model_validator(mode="after")
    def _min_agree_fits(self) -> CascadeSettings:
        if self.min_agree is not None and self.min_agree > self.samples:
            raise ValueError(f"min_agree ({self.min_agree}) cannot exceed samples ({self.samples})")
        return self


class CascadePolicy:
    """Student samples `n` actions at `temperature`; agreement → act, disagreement → the teacher acts.

    agreement: "code" (identical normalised code), "result" (identical results of running each
    candidate in a forked copy of the episode's worker: the final answer's value, else stdout;
    erroring candidates are dropped) or "majority" (identical code for at least `min_agree`).
    `min_agree` defaults to n (unanimity) for code/result and to n // 2 + 1 for majority.
    With `online=True`, every step the teacher takes is added to the student's store at once.
    """

    def __init__(
        self,
        student: StudentPolicy,
        teacher: Policy,
        n: int = 3,
        temperature: float = 0.7,
        agreement: AgreementMode = "result",
        min_agree: int | None = None,
        online: bool = False,
    ) -> None:
        if n < 1:
            raise ValueError("the cascade needs n >= 1 student samples")
        if agreement not in ("code", "result", "majority"):
            raise ValueError(f"agreement must be code, result or majority, got {agreement!r}")
        self.student, self.teacher = student, teacher
        self.n, self.temperature, self.agreement = n, temperature, agreement
        self.min_agree = min_agree or (n // 2 + 1 if agreement == "majority" else n)
        if not 1 <= self.min_agree <= n:
            raise ValueError(f"min_agree must be between 1 and n={n}")
        self.online = online
        self.name = f"cascade:{student.client.model}+{teacher.name}"
        # No spec when a part is an object that cannot describe itself.
        parts = getattr(student, "spec", None), getattr(teacher, "spec", None)
        self.spec = None if None in parts else PolicySpec(kind="cascade", settings=CascadeSettings(
            student=parts[0], teacher=parts[1], samples=n, temperature=temperature, agreement=agreement,
            min_agree=min_agree, online=online).model_dump(mode="json"))

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        sampled = await self.student.sample(ctx, self.n, self.temperature)
        texts = sampled.texts
        mode, warning = self.agreement, None
        try:
            keys = await self._vote_keys(ctx, texts)
        except StateNotBranchableError as exc:  # e.g. a live connection: vote on the code instead
            (keys, warning), mode = code_keys_instead([parse_action(t).code for t in texts], ctx, exc), "code"
        vote = Vote(mode=mode, warning=warning, **tally(keys, self.min_agree))
        if vote.accepted and vote.winner_index is not None:
            return PolicyOutput(
                text=texts[vote.winner_index], role="student", model=sampled.model, usage=sampled.usage,
                latency_s=sampled.latency_s, candidates=texts, vote=vote,
            )
        teacher_out = await self.teacher.act(ctx)
        if self.online and self.student.store is not None:
            self._learn(ctx, teacher_out.text)
        return PolicyOutput(
            text=teacher_out.text, role="teacher", model=teacher_out.model,
            usage=sampled.usage + teacher_out.usage, latency_s=sampled.latency_s + teacher_out.latency_s,
            candidates=texts, vote=vote, role_usage={"student": sampled.usage, "teacher": teacher_out.usage},
        )

    async def _vote_keys(self, ctx: PolicyContext, texts: list[str]) -> list[str | None]:
        parsed = [parse_action(t) for t in texts]
        if self.agreement != "result":
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
                         build_policy(settings.teacher, context), n=settings.samples,
                         temperature=settings.temperature, agreement=settings.agreement,
                         min_agree=settings.min_agree, online=settings.online)
