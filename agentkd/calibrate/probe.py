"""The policy a calibration runs: the teacher acts on every step, the student's scored action is tried beside it."""

from __future__ import annotations

from agentkd.codeact.normalize import normalize_code
from agentkd.codeact.parsing import parse_action
from agentkd.errors import StateNotBranchableError
from agentkd.policies.agreement import code_keys_instead, trial_keys
from agentkd.policies.base import Policy, PolicyContext, PolicyOutput
from agentkd.policies.student import StudentPolicy
from agentkd.records import Vote


class ConfidenceProbe:
    """At each step the student samples one action with its confidence (as the cascade's confidence mode would), the
    teacher acts, and both actions are run in forked copies of the episode's worker: the step records the
    confidence and whether the student's result matches the teacher's (`Vote.matches_teacher`). The episode
    follows the teacher, so every step is a state the teacher's cascade would meet."""

    def __init__(self, student: StudentPolicy, teacher: Policy) -> None:
        self.student, self.teacher = student, teacher
        self.name = f"calibrate:{student.client.model}+{teacher.name}"

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        scored = await self.student.sample_scored(ctx, self.student.client.temperature)
        teacher_out = await self.teacher.act(ctx)
        matches, warning = await same_result(ctx, parse_action(scored.text).code, parse_action(teacher_out.text).code)
        vote = Vote(mode="confidence", accepted=matches, winner_index=0, winner_count=1, needed=1, group_sizes=[1],
                    unusable=0, deferrable=False, warning=warning, confidence=scored.confidence,
                    matches_teacher=matches)
        return PolicyOutput(
            text=teacher_out.text, role="teacher", model=teacher_out.model,
            usage=scored.completion.usage + teacher_out.usage,
            latency_s=scored.completion.latency_s + teacher_out.latency_s, candidates=[scored.text], vote=vote,
            role_usage={"student": scored.completion.usage, "teacher": teacher_out.usage})


async def same_result(ctx: PolicyContext, student_code: str | None, teacher_code: str | None) -> tuple[bool, str | None]:
    """Whether the student's action gives the teacher's result on this state (both run in forked workers): the same
    final answer or printed output. Two erroring actions match when their code is the same; where the state cannot
    be branched, the normalised code is compared (and the warning says so)."""
    if student_code is None:
        return False, None
    try:
        student_key, teacher_key = await trial_keys(ctx, [student_code, teacher_code])
        warning = None
    except StateNotBranchableError as exc:
        (student_key, teacher_key), warning = code_keys_instead([student_code, teacher_code], ctx, exc)
    if student_key is None and teacher_key is None:
        return normalize_code(student_code) == normalize_code(teacher_code or ""), warning
    return student_key is not None and student_key == teacher_key, warning
