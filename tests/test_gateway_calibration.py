"""The cascade gateway's threshold chosen from graded traffic: which steps count as right, the threshold chosen for a
target, ungraded episodes left out, and the commands that write and read it (scripted episodes as the gateway
records them; the gateway itself is exercised in test_gateway_cascade.py)."""

import pytest
from typer.testing import CliRunner

from agentkd import RunFolder, RunLayout, Step, Task, ToolCall, Trajectory, Vote
from agentkd.cli import app
from agentkd.errors import CalibrationError
from agentkd.gateway.calibration import calibrate_traffic, traffic_points, traffic_threshold
from agentkd.gateway.settings import CASCADE_EVAL

PAY = ToolCall(name="pay", arguments='{"amount": 12, "to": "ana"}')
OTHER = ToolCall(name="pay", arguments='{"amount": 21, "to": "ana"}')


def said(call: ToolCall) -> str:
    """A student reply as the student writes it (a Hermes-style tool-call block)."""
    return f'<tool_call>\n{{"name": "{call.name}", "arguments": {call.arguments}}}\n</tool_call>'


def step(index: int, role: str, confidence: float | None, candidate: str | None) -> Step:
    usable = confidence is not None
    vote = Vote(mode="confidence", accepted=role == "student", winner_index=0 if usable else None,
                winner_count=int(usable), needed=1, group_sizes=[1] if usable else [], unusable=int(not usable),
                confidence=confidence, threshold=0.95)
    return Step(index=index, role=role, output="", tool_calls=[PAY], vote=vote,
                candidates=[candidate] if candidate is not None else None)


def episode(name: str, steps: list[Step], graded: bool, success: bool) -> Trajectory:
    return Trajectory(task=Task(id=name, prompt="pay ana"), policy="cascade", steps=steps, graded=graded,
                      success=success, score=float(success))


TRAFFIC = [
    episode("good", [step(0, "student", 0.99, said(PAY)), step(1, "student", 0.97, said(PAY))], True, True),
    episode("bad", [step(0, "student", 0.96, said(OTHER))], True, False),
    episode("deferred", [step(0, "teacher", 0.9, said(PAY)),  # the student would have made the teacher's call
                         step(1, "teacher", 0.8, said(OTHER)),  # another amount: wrong
                         step(2, "teacher", None, "I cannot help")], True, True),  # unusable: always deferred
    episode("ungraded", [step(0, "student", 0.5, said(OTHER))], False, False),
]


def gateway_run(path, traffic=TRAFFIC):
    folder = RunFolder(path, trajectories=RunLayout(path).eval_trajectories(CASCADE_EVAL))
    folder.start({"command": "gateway-cascade"}, {})
    for trajectory in traffic:
        folder.append(trajectory)
    folder.close()
    return path


def test_a_step_counts_right_by_its_grade_or_by_making_the_teachers_call():
    points, ungraded = traffic_points(TRAFFIC)
    assert ungraded == 1
    assert [(p.task_id, p.confidence, p.matches_teacher) for p in points] == [
        ("good", 0.99, True), ("good", 0.97, True), ("bad", 0.96, False),
        ("deferred", 0.9, True), ("deferred", 0.8, False), ("deferred", None, False)]


@pytest.mark.parametrize(("target", "threshold", "share"), [(0.95, 0.97, 2 / 6), (0.8, 0.9, 4 / 6), (0.6, 0.8, 5 / 6)])
def test_the_threshold_keeps_the_target_with_the_largest_student_share(tmp_path, target, threshold, share):
    run = gateway_run(tmp_path / "r")
    found = calibrate_traffic(run, target)
    assert (found.chosen.threshold, found.chosen.student_share) == (threshold, pytest.approx(share))
    assert (found.episodes, found.ungraded, found.steps, found.thresholds_in_use) == (3, 1, 6, [0.95])
    assert traffic_threshold(run) == threshold


def test_calibrate_traffic_and_the_gateway_read_it(tmp_path):
    run = gateway_run(tmp_path / "r")
    result = CliRunner().invoke(app, ["calibrate", "--run", str(run), "--traffic", "--target", "0.95"])
    assert result.exit_code == 0, result.output
    assert "chosen threshold 0.97" in result.output and "--calibrated" in result.output
    assert RunLayout(run).traffic_calibration.is_file()

    both = CliRunner().invoke(app, ["calibrate", "--run", str(run), "--traffic", "--split", "train[0:5]"])
    neither = CliRunner().invoke(app, ["calibrate", "--run", str(run)])
    for refused in (both, neither):
        assert refused.exit_code == 2 and "--traffic" in refused.output

    empty = tmp_path / "empty"
    RunFolder(empty).start({"command": "collect"}, {})
    missing = CliRunner().invoke(app, ["calibrate", "--run", str(empty), "--traffic"])
    assert missing.exit_code == 1 and "has no cascade gateway traffic" in missing.output
    not_yet = CliRunner().invoke(app, ["gateway", "--cascade", str(empty), "--student", "gguf/qwen2.5-coder-0.5b",
                                       "--teacher", "reference", "--calibrated"])
    assert not_yet.exit_code == 1 and "--traffic" in not_yet.output and "no traffic calibration" in not_yet.output
    plain = CliRunner().invoke(app, ["gateway", "--run", str(empty), "--teacher", "openai/gpt-4o-mini",
                                     "--calibrated"])
    assert plain.exit_code == 2 and "--calibrated is for --cascade" in plain.output


def test_traffic_with_no_graded_episode_is_refused(tmp_path):
    run = gateway_run(tmp_path / "r", TRAFFIC[-1:])
    with pytest.raises(CalibrationError, match="none of the 1 cascade episodes.*is graded.*/v1/feedback"):
        calibrate_traffic(run, 0.95)
