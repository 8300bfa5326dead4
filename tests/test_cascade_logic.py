"""Cascade voting, accounting and metrics with scripted students (fast); the real student is in test_cascade.py."""


import pytest

from agentkd import CodeActAgent, Environment, ReferencePolicy, Usage, tool
from agentkd.codeact import normalize_code
from agentkd.evaluate import break_even, summarize, wilson_interval
from agentkd.models.client import Completion
from agentkd.policies.agreement import result_key, tally
from agentkd.policies.cascade import CascadePolicy


@tool
def double(x: int) -> int:
    """Return 2 * x."""
    return 2 * x


def solve(task):
    yield "Thought: compute.\n```python\nv = double(21)\nprint(v)\n```"
    yield "Thought: answer.\n```python\nfinal_answer(v)\n```"


ENV = Environment(name="calc", tasks=[{"id": "a", "prompt": "double 21", "answer": 42}], tools=[double],
                  grader="numeric", max_steps=4, reference_solver=solve)
TASK = ENV.tasks("train")[0]


class ScriptedSampler:
    """Stands in for the student's sampler (a test double; the real SmolLM2 student runs in test_cascade.py)."""

    def __init__(self, per_step):
        self.per_step = per_step
        self.client = type("C", (), {"model": "scripted"})()
        self.store = None

    async def sample(self, ctx, n, temperature):
        texts = self.per_step[min(ctx.step_index, len(self.per_step) - 1)][:n]
        return Completion(texts=texts, usage=Usage(prompt_tokens=10 * n, completion_tokens=5 * n, calls=1),
                          latency_s=0.01, model="scripted")


def test_normalize_code_ignores_comments_spacing_and_quotes():
    assert normalize_code("x=1 # c\nprint( 'a' )") == normalize_code('x = 1\n\nprint("a")')
    assert normalize_code("x = 1") != normalize_code("x = 2")


def test_tally_and_result_keys():
    assert tally(["a", "a", "b"], 3)["accepted"] is False
    vote = tally(["a", "a", "b"], 2)
    assert vote["accepted"] and vote["winner_index"] == 0 and vote["group_sizes"] == [2, 1]
    assert tally([None, None, None], 1)["accepted"] is False
    assert result_key("", "Boom", False, None) is None
    assert result_key("noise", None, True, 42) == result_key("other", None, True, 42)


def test_agreement_is_accepted_and_disagreement_deferred_with_exact_accounting():
    same = "Thought: t\n```python\nv = double(21)\nprint(v)\n```"
    same_spaced = "Thought: t2\n```python\nv=double(21)  # again\nprint( v )\n```"
    final_a = "Thought: a\n```python\nfinal_answer(v)\n```"
    final_b = "Thought: b\n```python\nfinal_answer(v + 1)\n```"
    student = ScriptedSampler([[same, same_spaced, same], [final_a, final_b, final_a]])
    traj = CodeActAgent(ENV, CascadePolicy(student, ReferencePolicy(), samples=3)).run(TASK)
    assert traj.success and [s.role for s in traj.steps] == ["student", "teacher"]
    first, second = traj.steps
    assert first.vote.accepted and len(first.candidates) == 3 and not first.deferred
    assert second.deferred and second.vote.group_sizes == [2, 1]
    assert second.role_usage["student"].prompt_tokens == 30
    teacher = second.role_usage["teacher"]  # the reference teacher's tokens, counted as a model teacher would spend them
    assert teacher.prompt_tokens > 0 and teacher.counted_by and teacher.cost_usd == 0.0
    assert teacher.cached_prompt_tokens == 0  # its first call in the episode: nothing of its own to read from a cache
    by_role = traj.usage_by_role()
    assert by_role["student"].prompt_tokens == 60 and by_role["student"].calls == 2
    assert sum(u.total_tokens for u in by_role.values()) == traj.usage.total_tokens
    report = summarize([traj], "cascade", "train")
    assert report.student_share_of_steps == 0.5 and report.deferral_rate == 0.5


def test_majority_and_result_agreement():
    a = "```python\nprint(double(2))\n```"
    b = "```python\nprint(2 * 2)\n```"  # different code, same result
    student = ScriptedSampler([[a, b, a], ["```python\nfinal_answer(42)\n```"] * 3])
    traj = CodeActAgent(ENV, CascadePolicy(student, ReferencePolicy(), samples=3, agreement="majority")).run(TASK)
    assert traj.steps[0].role == "student" and traj.steps[0].vote.winner_count == 2
    traj = CodeActAgent(ENV, CascadePolicy(student, ReferencePolicy(), samples=3, agreement="result")).run(TASK)
    assert traj.steps[0].role == "student" and traj.steps[0].vote.winner_count == 3  # same stdout "4"
    assert traj.success


def test_result_agreement_trials_do_not_leak_state():
    leak = "```python\nv = 1000\nprint(v)\n```"
    student = ScriptedSampler([[leak, "```python\nv = 7\nprint(v)\n```", leak], ["```python\nfinal_answer(v)\n```"] * 3])
    traj = CodeActAgent(ENV, CascadePolicy(student, ReferencePolicy(), samples=3, agreement="result")).run(TASK)
    assert traj.steps[0].role == "teacher"  # 1000 vs 7: deferred; the teacher set v = 42
    assert traj.final_answer == 42 and traj.success


def test_cascade_rejects_bad_settings():
    with pytest.raises(ValueError, match="agreement"):
        CascadePolicy(ScriptedSampler([[""]]), ReferencePolicy(), agreement="vibes")
    with pytest.raises(ValueError, match="min_agree"):
        CascadePolicy(ScriptedSampler([[""]]), ReferencePolicy(), samples=3, min_agree=4)


def test_wilson_interval_and_break_even():
    lo, hi = wilson_interval(8, 10)
    assert 0.49 < lo < 0.5 and 0.94 < hi < 0.95
    assert wilson_interval(0, 0) == (0.0, 0.0)
    be = break_even(upfront_usd=10.0, teacher_cost=0.05, policy_cost=0.02)
    assert be.episodes == pytest.approx(333.33, rel=1e-3)
    assert break_even(10.0, 0.0, 0.0).episodes is None and "teacher" in break_even(10.0, 0.0, 0.0).note
    assert break_even(10.0, 0.02, 0.05).episodes is None
