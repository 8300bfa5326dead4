"""Confidence deferral: action-token confidence, the cascade's confidence mode, threshold calibration (fast, with
scripted students; the real llama.cpp student is in test_confidence_llama.py)."""

import asyncio
import math

import pytest

from agentkd import CodeActAgent, Environment, ReferencePolicy, Usage, tool
from agentkd.calibrate import CalibrateJob, ConfidenceProbe, calibrate, choose_threshold, threshold_curve
from agentkd.calibrate.threshold import CalibrationPoint
from agentkd.errors import CalibrationError
from agentkd.models.client import Completion, token_logprobs
from agentkd.policies.base import PolicyOutput
from agentkd.policies.cascade import CascadePolicy
from agentkd.policies.confidence import ScoredSample, Segment, action_confidence, action_logprobs
from agentkd.policies.names import PolicyNameError, parse_policy_name, policy_name
from agentkd.policies.settings import CascadeOptions
from agentkd.records import Step, Task, Trajectory, Vote
from agentkd.scale import run_episodes
from agentkd.specs import PolicySpec


@tool
def double(x: int) -> int:
    """Return 2 * x."""
    return 2 * x


def solve(task):
    yield "Thought: compute.\n```python\nv = double(21)\nprint(v)\n```"
    yield "Thought: answer.\n```python\nfinal_answer(v)\n```"


ENV = Environment(name="calc", tasks=[{"id": f"t{i}", "prompt": "double 21", "answer": 42} for i in range(3)],
                  tools=[double], grader="numeric", max_steps=4, reference_solver=solve)
RIGHT = ["Thought: compute.\n```python\nv = 2 * 21\nprint(v)\n```", "Thought: answer.\n```python\nfinal_answer(42)\n```"]
WRONG = "Thought: guess.\n```python\nfinal_answer(41)\n```"


class ScoredScript:
    """A scripted student that says how sure it is (a test double for a model's log-probabilities): on step i it
    replies `replies[i]` with confidence `confidences[i]`."""

    def __init__(self, replies, confidences):
        self.replies, self.confidences = replies, confidences
        self.client = type("C", (), {"model": "scripted", "temperature": 0.0})()
        self.store = None
        self.temperatures = []

    async def sample_scored(self, ctx, temperature):
        self.temperatures.append(temperature)
        i = min(ctx.step_index, len(self.replies) - 1)
        completion = Completion(texts=[self.replies[i]], usage=Usage(prompt_tokens=100, completion_tokens=10, calls=1),
                                latency_s=0.01, model="scripted")
        return ScoredSample(completion, self.confidences[i])


def tokens(*pieces):
    return [(p, math.log(0.5)) if p.startswith("?") else (p, 0.0) for p in pieces]


def test_only_the_code_tokens_count():
    reply = tokens("Thought", ": ?unsure", "\n```", "python", "\n", "x", " = ", "?1", "\n", "```", "\n?chat")
    assert action_logprobs(Segment(reply)) == [0.0, 0.0, math.log(0.5), 0.0]
    assert action_confidence([Segment(reply)]) == pytest.approx(0.5 ** 0.25)
    assert action_logprobs(Segment(tokens("Thought: no code at all"))) == []
    assert action_confidence([Segment(tokens("Thought: ", "?maybe"))]) is None
    follow_up = Segment(tokens("print", "?(x)", "\n```"), in_code=True)  # continued from an opened fence
    assert action_confidence([Segment(tokens("Thought: hm")), follow_up]) == pytest.approx(0.5 ** (1 / 3))


def test_token_logprobs_are_read_from_both_openai_formats():
    chat = {"logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.0}]}}
    legacy = {"logprobs": {"tokens": ["a", "b"], "token_logprobs": [-0.5, None]}}
    assert token_logprobs(chat) == [("a", -0.5), ("b", -1.0)]
    assert token_logprobs(legacy) == [("a", -0.5)]
    assert token_logprobs({"logprobs": None}) is None


def point(conf, ok, i=[0]):
    i[0] += 1
    return CalibrationPoint(task_id=f"t{i[0]}", step=0, confidence=conf, matches_teacher=ok)


def test_the_threshold_keeps_the_target_with_the_largest_student_share():
    points = [point(0.99, True), point(0.97, True), point(0.95, False), point(0.9, True), point(0.8, False),
              point(0.7, True), point(None, False), point(0.6, False), point(0.5, True), point(0.4, False)]
    curve = threshold_curve(points)
    assert [c.student_share for c in curve] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert all(a.step_accuracy >= b.step_accuracy for a, b in zip(curve, curve[1:]))
    # one wrong step in ten allowed: take the 0.99, 0.97, 0.95 (wrong) and 0.9 steps, not the 0.8 (a second miss)
    chosen = choose_threshold(points, target=0.9)
    assert chosen.student_share == 0.4 and chosen.step_accuracy == pytest.approx(0.9)
    assert 0.8 < chosen.threshold <= 0.9
    assert choose_threshold(points, target=1.0).student_share == 0.2  # only the two sure, right ones
    assert choose_threshold(points, target=0.5).student_share == 0.9  # everything with a confidence
    nothing = choose_threshold([point(0.9, False)], target=0.99)
    assert nothing.student_share == 0.0 and nothing.threshold == 1.0


def test_equal_confidences_are_taken_together():
    points = [point(0.9, True), point(0.9, False), point(0.5, True)]
    assert [c.student_share for c in threshold_curve(points)] == pytest.approx([0.0, 2 / 3, 1.0])


def test_confidence_cascade_takes_sure_steps_and_defers_unsure_ones():
    student = ScoredScript([RIGHT[0], WRONG], [0.97, 0.6])
    cascade = CascadePolicy(student, ReferencePolicy(), agreement="confidence", threshold=0.9)
    traj = CodeActAgent(ENV, cascade).run(ENV.tasks("train")[0])
    assert [s.role for s in traj.steps] == ["student", "teacher"] and traj.success
    first, second = traj.steps
    assert first.vote.mode == "confidence" and first.vote.confidence == 0.97 and first.vote.threshold == 0.9
    assert second.deferred and second.vote.confidence == 0.6 and second.candidates == [WRONG]
    assert second.role_usage["student"].prompt_tokens == 100
    assert student.temperatures == [0.0, 0.0]  # one sample at the student's own temperature
    no_code = ScoredScript(["Thought: I will think more."], [None])
    traj = CodeActAgent(ENV, CascadePolicy(no_code, ReferencePolicy(), agreement="confidence", threshold=0.0)).run(
        ENV.tasks("train")[0])
    assert all(s.role == "teacher" for s in traj.steps)  # no code, no confidence: deferred even at threshold 0


class Answerer:
    """A scripted teacher that answers 42 at any step."""

    name = "answerer"

    async def act(self, ctx):
        return PolicyOutput(text=RIGHT[1], role="teacher", model="scripted", usage=Usage(prompt_tokens=9, calls=1))


def test_a_sure_student_repeating_itself_stops_the_episode_or_goes_to_the_teacher_as_told():
    looping = "Thought: look.\n```python\nprint(w)\n```"  # a NameError, answered the same way again and again

    def run(**settings):
        cascade = CascadePolicy(ScoredScript([looping], [0.999]), Answerer(), agreement="confidence", threshold=0.9,
                                **settings)
        return CodeActAgent(ENV, cascade).run(ENV.tasks("train")[0])

    stopped = run()  # the 3rd reply answers the error it answered before the same way
    assert [s.role for s in stopped.steps] == ["student", "student"] and stopped.status == "stuck"
    assert "repeated" in stopped.error and not stopped.success
    paid = stopped.usage_by_role()["student"]  # the reply that stopped it was paid for, though it is no step
    assert paid.calls == 3 and stopped.stopped_usage["student"].calls == 1 and stopped.usage.calls == 3
    assert "stopped_usage" in stopped.model_dump()
    again = type(stopped).model_validate_json(stopped.model_dump_json())
    assert again.usage_by_role() == stopped.usage_by_role()
    handed = run(on_repeat="teacher")
    assert [s.role for s in handed.steps] == ["student", "student", "teacher"] and handed.success
    third = handed.steps[2]
    assert "stopped_usage" not in handed.model_dump()  # recorded only when an episode was stopped
    assert third.vote.repeated and not third.vote.accepted and third.candidates == [looping]
    assert third.vote.model_dump()["repeated"] is True and "repeated" not in handed.steps[0].vote.model_dump()
    taken = run(on_repeat="take")
    assert {s.role for s in taken.steps} == {"student"} and taken.status == "step_limit" and not taken.success
    teacher = PolicySpec(kind="reference", settings={})
    for part, action in (("repteacher", "teacher"), ("reptake", "take")):
        named = parse_policy_name(f"cascade-confidence-{part}-c0.9", teacher, "x")
        assert named.settings["on_repeat"] == action and policy_name(named) == f"cascade-confidence-{part}-c0.9"
    given = parse_policy_name("cascade-confidence", teacher, "x", on_repeat="teacher")  # as `eval --on-repeat` passes it
    assert given.settings["on_repeat"] == "teacher" and policy_name(given) == "cascade-confidence-repteacher"
    assert "on_repeat" not in CascadeOptions().model_dump()  # the default is recorded as before it existed


def test_names_and_recorded_specs_of_confidence_cascades():
    teacher = PolicySpec(kind="reference", settings={})
    spec = parse_policy_name("cascade-confidence-c0.87-k2", teacher, "gguf/qwen2.5-coder-0.5b")
    assert spec.settings["agreement"] == "confidence" and spec.settings["threshold"] == 0.87
    assert policy_name(spec) == "cascade-confidence-c0.87-k2"
    plain = parse_policy_name("cascade-code", teacher, "gguf/qwen2.5-coder-0.5b")
    assert "threshold" not in plain.settings  # other cascades are recorded as before the setting existed
    with pytest.raises(PolicyNameError, match="confidence"):
        parse_policy_name("cascade-code-c0.5", teacher)
    assert "threshold" not in CascadeOptions().model_dump()
    assert CascadeOptions(agreement="confidence").model_dump()["threshold"] == 0.99
    assert "confidence" not in Vote(mode="code", accepted=True, winner_index=0, winner_count=1, needed=1,
                                    group_sizes=[1], unusable=0).model_dump()


async def _probe_episodes(tmp_path, student):
    from agentkd.run.folder import RunFolder

    folder = RunFolder(tmp_path / "cal", trajectories=tmp_path / "cal" / "c.jsonl", config=tmp_path / "cal" / "c.json")
    folder.start(identity={"probe": 1}, details={})
    await run_episodes(ENV, ConfidenceProbe(student, ReferencePolicy()), ENV.tasks("train"), folder, concurrency=1)
    return list(folder.iter_trajectories())


def test_calibration_scores_each_teacher_state_and_picks_the_threshold(tmp_path):
    # right and sure on step 0 (other code, the same printed 42); sure but wrong on step 1
    student = ScoredScript([RIGHT[0], WRONG], [0.99, 0.95])
    trajs = asyncio.run(_probe_episodes(tmp_path, student))
    assert all(t.success and [s.role for s in t.steps] == ["teacher", "teacher"] for t in trajs)
    assert [s.vote.matches_teacher for s in trajs[0].steps] == [True, False]  # the same printed 42; 41 != 42
    spec = PolicySpec(kind="cascade", settings={"student": {"kind": "icd", "settings": {"model": "gguf/x.gguf"}},
                                                "teacher": {"kind": "reference", "settings": {}},
                                                "agreement": "confidence"})
    result = calibrate(trajs, spec, "c", "train", target=0.99)
    assert result.steps == 6 and result.chosen.student_share == 0.5
    assert 0.95 < result.chosen.threshold <= 0.99 and result.policy.settings["threshold"] == result.chosen.threshold
    named = parse_policy_name(result.policy_name, PolicySpec(kind="reference", settings={}), "gguf/x.gguf")
    assert named.settings["threshold"] == result.chosen.threshold  # the name says the threshold (or its default)


def _scored(task_id: str, success: bool, steps: list[tuple[float, bool]]) -> Trajectory:
    """A calibration episode of the teacher whose steps hold the student's (confidence, matches the teacher)."""
    votes = [Vote(mode="confidence", accepted=False, winner_index=0, winner_count=1, needed=1, group_sizes=[1],
                  unusable=0, confidence=c, matches_teacher=m) for c, m in steps]
    return Trajectory(task=Task(id=task_id, prompt="q"), policy="calibrate", success=success,
                      steps=[Step(index=i, role="teacher", output="", vote=v) for i, v in enumerate(votes)])


def test_calibration_scores_the_teachers_solved_tasks_unless_told_all():
    """Where the teacher failed, a student that leaves its path is no miss: by default those steps do not count."""
    spec = PolicySpec(kind="cascade", settings={"student": {"kind": "icd", "settings": {"model": "gguf/x.gguf"}},
                                                "teacher": {"kind": "reference", "settings": {}},
                                                "agreement": "confidence"})
    trajs = [_scored("solved", True, [(0.99, True), (0.97, True)]), _scored("failed", False, [(0.995, False)])]
    solved = calibrate(trajs, spec, "c", "train", target=0.99, reference="solved")
    assert (solved.reference, solved.tasks, solved.steps, solved.chosen.student_share) == ("solved", 1, 2, 1.0)
    assert solved.chosen.threshold <= 0.97
    every = calibrate(trajs, spec, "c", "train", target=0.99, reference="all")
    assert (every.reference, every.tasks, every.steps) == ("all", 2, 3)
    assert (every.chosen.threshold, every.chosen.student_share) == (1.0, 0.0)  # the confident miss defers everything
    unsolved = calibrate(trajs[1:], spec, "c", "train", target=0.99, reference="solved")
    assert (unsolved.reference, unsolved.steps) == ("all", 1)  # the teacher solved nothing: every step counts


def test_episode_checks_keep_the_cheapest_threshold_within_the_margin_of_the_teacher():
    from agentkd.calibrate import EpisodeCheck, choose_by_episodes

    def check(threshold, successes, cost):
        return EpisodeCheck(threshold=threshold, episodes=20, successes=successes, student_share=1 - threshold,
                            cost_per_episode_usd=cost, evaluation=f"c{threshold}")

    checks = [check(0.99, 10, 0.0006), check(0.9, 10, 0.0004), check(0.8, 9, 0.0003), check(0.5, 7, 0.0002)]
    chosen = choose_by_episodes(checks, teacher_successes=10, episodes=20, margin=0.05)
    assert chosen.chosen.threshold == 0.8  # 45% is within 5 points of the teacher's 50%; 35% is not
    assert [c.threshold for c in chosen.checks] == [0.5, 0.8, 0.9, 0.99]
    assert choose_by_episodes(checks, 10, 20, margin=0.03).chosen.threshold == 0.9
    assert choose_by_episodes(checks, 12, 20, margin=0.03).chosen is None  # none keeps 60% - 3 points


def test_calibrating_on_collected_tasks_is_refused(tmp_path):
    from agentkd.collect.job import CollectJob
    from agentkd.specs import EnvSpec

    factqa_run = tmp_path / "run"
    CollectJob(run=factqa_run, env=EnvSpec(target="factqa"), teacher=PolicySpec(kind="reference", settings={}),
               split="train", n=3).execute()
    job = CalibrateJob(run=factqa_run, split="train", n=3, target=0.9,
                       policy=parse_policy_name("cascade-confidence", PolicySpec(kind="reference", settings={}),
                                                "gguf/qwen2.5-coder-0.5b"))
    with pytest.raises(CalibrationError, match="collected"):
        job.execute()
    with pytest.raises(CalibrationError, match="not a cascade"):
        CalibrateJob(run=factqa_run, policy=PolicySpec(kind="reference", settings={})).execute()
