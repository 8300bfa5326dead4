"""Targeted collection: scripted probe results → chosen tasks (budget, order, nearby by template), the test split
refused, and `agentkd collect --on-failures` on a real run (reference teacher) that resumes with the same tasks."""

import json

import pytest
from typer.testing import CliRunner

from agentkd import RunFolder, RunLayout, Step, Trajectory, Vote
from agentkd.cli import app
from agentkd.collect.targets import TargetingError, episode_score, select_targets, task_group
from agentkd.evaluate import eval_folder


def two_sample_vote(accepted: bool) -> Vote:
    return Vote(mode="code", accepted=accepted, winner_index=0, winner_count=2 if accepted else 1, needed=2,
                group_sizes=[2] if accepted else [1, 1], unusable=0)


def probe_episode(task, success, deferred=0, steps=2):
    records = [Step(index=i, role="teacher" if i < deferred else "student", output="x", action="x",
                    candidates=["a", "b"], vote=two_sample_vote(i >= deferred)) for i in range(steps)]
    return Trajectory(task=task, policy="cascade", steps=records, success=success)


def test_failed_tasks_first_then_nearby_tasks_of_their_templates_within_the_budget(factqa):
    train = factqa.tasks("train")
    probed, rest = train[:12], train[12:200]
    by_template = {}
    for task in probed:
        by_template.setdefault(task_group(task), []).append(task)
    a, b = [tasks for tasks in by_template.values() if len(tasks) >= 2][:2]
    episodes = [probe_episode(t, success=True) for t in probed]
    fail_a1, fail_a2, defer_b = a[0], a[1], b[0]
    scripted = {fail_a1.id: probe_episode(fail_a1, False, deferred=1),   # score 1.5
                fail_a2.id: probe_episode(fail_a2, False),               # score 1.0
                defer_b.id: probe_episode(defer_b, True, deferred=1)}    # score 0.5: solved, but half deferred
    episodes = [scripted.get(e.task.id, e) for e in episodes]
    assert [episode_score(scripted[t.id]) for t in (fail_a1, fail_a2, defer_b)] == [1.5, 1.0, 0.5]

    plan = select_targets(episodes, rest, budget=9, eval_name="probe")
    assert len(plan.chosen) == 9 and len(set(plan.task_ids)) == 9
    assert [(c.task_id, c.reason) for c in plan.chosen[:3]] == [
        (fail_a1.id, "failed"), (fail_a2.id, "failed"), (defer_b.id, "deferred")]
    nearby = plan.chosen[3:]
    assert {c.reason for c in nearby} == {"nearby"}
    by_id = {t.id: t for t in rest}
    groups = [task_group(by_id[c.task_id]) for c in nearby]
    # weights 2.5 (template of a) : 0.5 (template of b) → D'Hondt gives a five of the six nearby draws
    assert groups.count(task_group(a[0])) == 5 and groups.count(task_group(b[0])) == 1
    assert plan.group_weights == {task_group(a[0]): 2.5, task_group(b[0]): 0.5}
    assert (plan.probed, plan.failed, plan.deferred) == (12, 2, 1)

    small = select_targets(episodes, rest, budget=2, eval_name="probe")
    assert small.task_ids == [fail_a1.id, fail_a2.id]  # the budget holds, highest scores first

    collected = {fail_a1.id} | {t.id for t in rest[:50]}
    plan = select_targets(episodes, rest, budget=9, eval_name="probe", exclude=collected)
    assert not collected & set(plan.task_ids) and len(plan.chosen) == 9

    ungrouped = select_targets(episodes, rest, budget=5, eval_name="probe", group_by="none")
    assert [c.reason for c in ungrouped.chosen] == ["failed", "failed", "deferred", "uniform", "uniform"]
    assert ungrouped.task_ids[3:] == [rest[0].id, rest[1].id]  # uniform draws in split order

    perfect = [probe_episode(t, success=True) for t in probed]
    assert [c.reason for c in select_targets(perfect, rest, budget=3).chosen] == ["uniform"] * 3


def test_probe_results_from_the_test_split_are_refused(factqa, tmp_path):
    test_tasks = factqa.tasks("test", 3)
    with pytest.raises(TargetingError, match="test set"):
        select_targets([probe_episode(t, False) for t in test_tasks], factqa.tasks("train", 5), budget=2)
    with pytest.raises(TargetingError, match="test set"):  # test tasks among the candidates too
        select_targets([probe_episode(factqa.tasks("train", 1)[0], False)], test_tasks, budget=3)
    with pytest.raises(TargetingError, match="at least 1"):
        select_targets([], test_tasks, budget=0)


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_collect_on_failures_runs_the_teacher_where_the_probe_failed_and_resumes(tmp_path):
    run = tmp_path / "r"
    common = ["--env", "factqa", "--teacher", "reference", "--run", run]
    assert run_cli("collect", *common, "--n", 3).exit_code == 0
    # A real probe on 6 unseen train tasks (the reference teacher solves all of them) ...
    done = run_cli("eval", "--run", run, "--policy", "teacher", "--split", "train", "--unseen", "--n", 6, "--name", "probe")
    assert done.exit_code == 0, done.output
    layout = RunLayout(run)
    probed = list(eval_folder(run, "probe").iter_trajectories())
    collected = [t.task.id for t in RunFolder(run).iter_trajectories()]
    assert len(probed) == 6 and not {t.task.id for t in probed} & set(collected)
    # ... whose results are then scripted: two episodes failed.
    failed = [probed[1], probed[4]]
    lines = [t.model_copy(update={"success": t.task.id not in {f.task.id for f in failed}}).model_dump_json()
             for t in probed]
    layout.eval_trajectories("probe").write_text("\n".join(lines) + "\n")

    done = run_cli("collect", *common, "--on-failures", "probe", "--budget", 4)
    assert done.exit_code == 0, done.output
    plan = json.loads(layout.targets("probe").read_text())
    chosen = [c["task_id"] for c in plan["chosen"]]
    assert chosen[:2] == [failed[0].task.id, failed[1].task.id] and len(chosen) == 4
    assert [c["reason"] for c in plan["chosen"]] == ["failed", "failed", "nearby", "nearby"]
    templates = {task_group(f.task) for f in failed}
    assert {c["group"] for c in plan["chosen"][2:]} <= templates
    after = [t.task.id for t in RunFolder(run).iter_trajectories()]
    assert after[:3] == collected and sorted(after[3:]) == sorted(chosen)  # appended, nothing lost

    # Re-running resumes the same targets: nothing new, the plan file unchanged.
    before = layout.targets("probe").read_text()
    done = run_cli("collect", *common, "--on-failures", "probe", "--budget", 4)
    assert done.exit_code == 0 and layout.targets("probe").read_text() == before
    assert len(list(RunFolder(run).iter_trajectories())) == 7
    done = run_cli("collect", *common, "--on-failures", "probe", "--budget", 5)
    assert done.exit_code == 1 and "--budget 4" in done.output

    # An evaluation on the test split is refused, with the reason, and nothing is written.
    assert run_cli("eval", "--run", run, "--policy", "teacher", "--n", 2).exit_code == 0
    size = layout.trajectories.stat().st_size
    done = run_cli("collect", *common, "--on-failures", "teacher", "--budget", 2)
    assert done.exit_code == 1 and "test split" in done.output and "test set" in done.output
    assert layout.trajectories.stat().st_size == size and not layout.targets("teacher").exists()
    done = run_cli("collect", *common, "--on-failures", "nope", "--budget", 2)
    assert done.exit_code == 1 and "no evaluation named 'nope'" in done.output
    assert run_cli("collect", *common, "--budget", 2).exit_code == 2  # --budget without --on-failures
