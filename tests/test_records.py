import json
from pathlib import Path

import pydantic
import pytest

from agentkd import SCHEMA_VERSION, Injection, Resample, RunFolder, Step, Task, Trajectory, Usage, Vote
from agentkd.errors import RunFolderError

V2_LINES = Path(__file__).parent / "data" / "trajectories_v2.jsonl"
"""Schema-2 lines as the code before typed votes wrote them: a code-agreement cascade (one step accepted, one
deferred), self-consistent generation, a resampled repeat, and a collection with a recovery slip."""


def make_trajectory() -> Trajectory:
    task = Task(id="q1", prompt="Who?", answer=["Ada", "Ada L."], split="test", metadata={"kind": "single"})
    steps = [
        Step(index=0, role="teacher", model="m", output="Thought: x\n```python\nprint(1)\n```", thought="x",
             action="print(1)", observation="1", usage=Usage(prompt_tokens=10, completion_tokens=5, cost_usd=0.001, calls=1)),
        Step(index=1, role="student", output="oops", parse_error="no code", observation="no code",
             usage=Usage(prompt_tokens=3, completion_tokens=2, calls=1), candidates=["a", "b"],
             vote=Vote(mode="code", accepted=False, winner_index=0, winner_count=1, needed=2, group_sizes=[1, 1],
                       unusable=0)),
    ]
    return Trajectory(task=task, policy="cascade", steps=steps, final_answer={"name": "Ada"}, status="finished",
                      score=1.0, success=True, parse_errors=1, usage=steps[0].usage + steps[1].usage)


def test_trajectory_json_round_trip_is_lossless():
    traj = make_trajectory()
    again = Trajectory.model_validate_json(traj.model_dump_json())
    assert again == traj
    assert again.schema_version == SCHEMA_VERSION
    assert again.key == ("q1", 0)


def test_usage_adds_and_splits_by_role():
    traj = make_trajectory()
    assert traj.usage.total_tokens == 20
    assert abs(traj.usage.cost_usd - 0.001) < 1e-12
    by_role = traj.usage_by_role()
    assert by_role["teacher"].prompt_tokens == 10
    assert by_role["student"].completion_tokens == 2


def test_task_rejects_unknown_fields():
    with pytest.raises(pydantic.ValidationError):
        Task(id="x", prompt="p", answr="typo")


def test_version_2_lines_read_into_typed_models_with_every_key_kept():
    lines = V2_LINES.read_text().splitlines()
    cascade, sc, resampled, recovered = (Trajectory.model_validate_json(line) for line in lines)
    assert {t.schema_version for t in (cascade, sc, resampled, recovered)} == {2}
    accepted, deferred = cascade.steps
    assert isinstance(accepted.vote, Vote) and accepted.vote.mode == "code" and accepted.vote.accepted
    assert accepted.cascaded and not accepted.deferred and accepted.vote.warning is None
    assert deferred.deferred and deferred.vote.group_sizes == [2, 1] and deferred.vote.needed == 3
    assert all(s.vote.mode == "result" and not s.vote.deferrable and not s.cascaded for s in sc.steps)
    assert resampled.steps[1].resampled == Resample(reason="repeated the previous reply for the same state",
                                                     temperature=0.7, attempts=1)
    slipped = [s for s in recovered.steps if s.injected is not None]
    assert len(slipped) == 1 and isinstance(slipped[0].injected, Injection)
    assert slipped[0].injected.kind == "misspelt argument"
    assert recovered.steps[slipped[0].index + 1].action == slipped[0].injected.original
    for line, traj in zip(lines, (cascade, sc, resampled, recovered)):  # every old key, and nothing else, is read
        for raw, step in zip(json.loads(line)["steps"], traj.steps):
            for field in ("vote", "resampled", "injected"):
                typed = getattr(step, field)
                assert (typed.model_dump(exclude_unset=True) if typed is not None else None) == raw[field]


def test_version_3_round_trip_keeps_the_typed_fields():
    traj = make_trajectory()
    traj.steps[0].resampled = Resample(reason="repeated", temperature=0.7, attempts=2)
    traj.steps[0].injected = Injection(original="print(search('Ada'))", kind="misspelt argument")
    traj.steps[1].vote = Vote(mode="result", accepted=True, winner_index=1, winner_count=1, needed=1,
                              group_sizes=[1], unusable=1, deferrable=False, warning="fell back")
    line = traj.model_dump_json()
    again = Trajectory.model_validate_json(line)
    assert again == traj and again.schema_version == SCHEMA_VERSION >= 3
    raw = json.loads(line)["steps"]
    assert raw[1]["vote"]["group_sizes"] == [1] and raw[0]["injected"]["original"] == "print(search('Ada'))"
    assert not again.steps[1].cascaded and not again.steps[1].deferred


def _line_with_vote(vote: dict) -> str:
    return json.dumps({"schema_version": 2, "task": {"id": "a", "prompt": "p"}, "policy": "cascade",
                       "steps": [{"index": 0, "role": "student", "output": "x", "candidates": ["x", "y"],
                                  "vote": vote}]})


GOOD_VOTE = {"mode": "code", "group_sizes": [1, 1], "winner_count": 1, "needed": 2, "accepted": False,
             "winner_index": 0, "unusable": 0}


@pytest.mark.parametrize("change, where, message", [
    ({"accepted": None}, "steps.0.vote.accepted", "valid boolean"),
    ({"mode": "vibes"}, "steps.0.vote.mode", "'code', 'result', 'majority' or 'confidence'"),
    ({"agree": 1}, "steps.0.vote.agree", "Extra inputs are not permitted"),
])
def test_a_malformed_vote_is_refused_naming_the_key(change, where, message, tmp_path):
    vote = {**GOOD_VOTE, **change}
    assert Trajectory.model_validate_json(_line_with_vote(GOOD_VOTE)).steps[0].deferred
    with pytest.raises(pydantic.ValidationError) as caught:
        Trajectory.model_validate_json(_line_with_vote(vote))
    assert where in str(caught.value) and message in str(caught.value)
    folder = RunFolder(tmp_path)
    folder.trajectories_path.write_text(_line_with_vote(GOOD_VOTE) + "\n" + _line_with_vote(vote) + "\n")
    with pytest.raises(RunFolderError, match=rf"line 2 of .*trajectories.jsonl is not a valid trajectory: {where}: "):
        list(folder.iter_trajectories())


def test_a_vote_missing_a_key_and_a_newer_schema_are_refused():
    vote = {k: v for k, v in GOOD_VOTE.items() if k != "needed"}
    with pytest.raises(pydantic.ValidationError, match=r"steps.0.vote.needed\n  Field required"):
        Trajectory.model_validate_json(_line_with_vote(vote))
    newer = json.loads(_line_with_vote(GOOD_VOTE)) | {"schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(pydantic.ValidationError, match="written by a newer agentkd"):
        Trajectory.model_validate(newer)
