from agentkd import SCHEMA_VERSION, Step, Task, Trajectory, Usage


def make_trajectory() -> Trajectory:
    task = Task(id="q1", prompt="Who?", answer=["Ada", "Ada L."], split="test", metadata={"kind": "single"})
    steps = [
        Step(index=0, role="teacher", model="m", output="Thought: x\n```python\nprint(1)\n```", thought="x",
             action="print(1)", observation="1", usage=Usage(prompt_tokens=10, completion_tokens=5, cost_usd=0.001, calls=1)),
        Step(index=1, role="student", output="oops", parse_error="no code", observation="no code",
             usage=Usage(prompt_tokens=3, completion_tokens=2, calls=1), candidates=["a", "b"], vote={"agree": 1}),
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
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError):
        Task(id="x", prompt="p", answr="typo")
