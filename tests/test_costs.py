"""The ICD cost table: $ under a price pair, FLOPs, cost ratio and break-even against the teacher row."""

import pytest

from agentkd.evaluate.costs import PriceSettings, cost_table
from agentkd.records import Step, Task, Trajectory, Usage, Vote


def traj(task: str, roles: list[str], success: bool, usage: dict[str, Usage], duration: float = 2.0) -> Trajectory:
    steps = [Step(index=i, role=role, output="x", usage=Usage()) for i, role in enumerate(roles)]
    steps[0] = steps[0].model_copy(update={"role_usage": usage, "usage": sum(usage.values(), Usage())})
    return Trajectory(task=Task(id=task, prompt="q", answer=1), policy="p", steps=steps, success=success,
                      duration_s=duration)


SETTINGS = PriceSettings(prices={"teacher": (3.0, 15.0), "student": (0.4, 1.6)},
                         params={"teacher": 1.5e9, "student": 0.5e9})


def test_cost_ratio_break_even_and_flops_against_the_teacher():
    teacher_use = {"teacher": Usage(prompt_tokens=1000, completion_tokens=100, calls=2)}
    cascade_use = {"student": Usage(prompt_tokens=1000, completion_tokens=300, calls=2),
                   "teacher": Usage(prompt_tokens=500, completion_tokens=50, calls=1)}
    evaluations = {
        "teacher": [traj("a", ["teacher", "teacher"], True, teacher_use), traj("b", ["teacher"] * 2, False, teacher_use)],
        "cascade": [traj("a", ["student", "teacher"], True, cascade_use), traj("b", ["student"] * 2, True, cascade_use)],
    }
    collected = [traj("c", ["teacher"], True, teacher_use)] * 10
    table = cost_table("e", "test", evaluations, collected, SETTINGS)
    teacher_row, cascade_row = table.rows
    assert teacher_row.cost_usd == pytest.approx((1000 * 3 + 100 * 15) / 1e6)
    assert cascade_row.cost_usd == pytest.approx((1000 * 0.4 + 300 * 1.6 + 500 * 3 + 50 * 15) / 1e6)
    assert cascade_row.cost_ratio == pytest.approx(teacher_row.cost_usd / cascade_row.cost_usd)
    assert cascade_row.flops == pytest.approx(2 * 0.5e9 * 1300 + 2 * 1.5e9 * 550)
    assert table.collection["cost_usd"] == pytest.approx(10 * teacher_row.cost_usd)
    saving = teacher_row.cost_usd - cascade_row.cost_usd
    assert cascade_row.break_even_episodes == pytest.approx(table.collection["cost_usd"] / saving)
    assert cascade_row.teacher_share_of_steps == pytest.approx(0.25)
    assert cascade_row.calls_per_step == pytest.approx(3 / 2)  # student call + the deferred step's teacher call
    assert (teacher_row.success_rate, cascade_row.success_rate) == (0.5, 1.0)
    assert teacher_row.cost_ratio is None
    student_usd = (1000 * 0.4 + 300 * 1.6) / 1e6
    assert cascade_row.cost_by_role == pytest.approx({"student": student_usd, "teacher": (500 * 3 + 50 * 15) / 1e6})
    # no deferral rate can take the cascade past what its student samples alone cost
    assert cascade_row.cost_ratio_bound == pytest.approx(teacher_row.cost_usd / student_usd)
    assert cascade_row.cost_ratio < cascade_row.cost_ratio_bound and teacher_row.cost_ratio_bound is None


def test_no_saving_means_no_break_even_and_tasks_must_match():
    use = {"teacher": Usage(prompt_tokens=100, completion_tokens=10, calls=1)}
    costly = {"teacher": Usage(prompt_tokens=200, completion_tokens=10, calls=1)}
    table = cost_table("e", "test", {"teacher": [traj("a", ["teacher"], True, use)],
                                     "other": [traj("a", ["teacher"], True, costly)]}, [], SETTINGS)
    assert table.rows[1].break_even_episodes is None and table.rows[1].cost_ratio == pytest.approx(450 / 750)
    with pytest.raises(ValueError, match="same tasks"):
        cost_table("e", "test", {"teacher": [traj("a", ["teacher"], True, use)],
                                 "other": [traj("b", ["teacher"], True, use)]}, [], SETTINGS)
    with pytest.raises(ValueError, match="needs the teacher"):
        cost_table("e", "test", {"other": [traj("a", ["teacher"], True, use)]}, [], SETTINGS)


def test_deferral_by_quarter_follows_run_order():
    from agentkd.evaluate.costs import deferral_by_quarter

    def voted(deferred: bool) -> Step:
        return Step(index=0, role="teacher" if deferred else "student", output="x", candidates=["a", "b"],
                    vote=Vote(mode="code", accepted=not deferred, winner_index=0, winner_count=1 if deferred else 2,
                              needed=2, group_sizes=[1, 1] if deferred else [2], unusable=0))

    trajs = [Trajectory(task=Task(id=str(i), prompt="q", answer=1), policy="p",
                        steps=[voted(i < 2), voted(i < 4)]) for i in range(8)]
    assert deferral_by_quarter(trajs) == [1.0, 0.5, 0.0, 0.0]
    assert deferral_by_quarter([Trajectory(task=Task(id="x", prompt="q", answer=1), policy="p",
                                           steps=[Step(index=0, role="teacher", output="x")])]) == []


def test_cached_prompt_tokens_are_billed_at_the_cached_share():
    use = {"student": Usage(prompt_tokens=1000, completion_tokens=100, calls=1, cached_prompt_tokens=800),
           "teacher": Usage(prompt_tokens=400, completion_tokens=40, calls=1, cached_prompt_tokens=0)}
    evaluations = {"teacher": [traj("a", ["teacher"], True, {"teacher": use["teacher"]})],
                   "cascade": [traj("a", ["student", "teacher"], True, use)]}
    list_prices = cost_table("e", "test", evaluations, [], SETTINGS).rows[1]
    assert list_prices.cost_usd == pytest.approx((1000 * 0.4 + 100 * 1.6 + 400 * 3 + 40 * 15) / 1e6)  # no discount
    cached = cost_table("e", "test", evaluations, [], SETTINGS.model_copy(update={"cached_share": 0.1})).rows[1]
    assert cached.cost_usd == pytest.approx(((200 + 80) * 0.4 + 100 * 1.6 + 400 * 3 + 40 * 15) / 1e6)
    assert cached.tokens["student"] == {"prompt": 1000, "completion": 100, "cached": 800}
    assert (Usage(prompt_tokens=5, cached_prompt_tokens=3) + Usage(prompt_tokens=5, cached_prompt_tokens=2)
            ).cached_prompt_tokens == 5
    with pytest.raises(ValueError):
        PriceSettings(cached_share=1.5)
