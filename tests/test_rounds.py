"""Improvement rounds without training: what a base run needs, the round rows and their plot (scripted files)."""

import json

import pytest

from agentkd import ImproveSettings, RunLayout, round_rows
from agentkd.errors import RunFolderError
from agentkd.report.data import gather
from agentkd.report.plots import rounds_figure
from agentkd.rounds import RoundsError, next_stage


def test_a_round_needs_a_run_with_teacher_trajectories(tmp_path):
    with pytest.raises(RunFolderError, match="not a run folder"):
        next_stage(tmp_path / "none", ImproveSettings())
    run = tmp_path / "empty"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"identity": {"command": "collect", "teacher": "reference"}}))
    with pytest.raises(RoundsError, match="no teacher trajectories"):
        next_stage(run, ImproveSettings())


def test_settings_identity_leaves_out_how_many_rounds_and_concurrency():
    assert ImproveSettings(rounds=2, concurrency=1).identity() == ImproveSettings(rounds=5, concurrency=8).identity()
    assert ImproveSettings(budget=5).identity() != ImproveSettings(budget=6).identity()


def report(success, share=None, lo=0.1, hi=0.9):
    return json.dumps({"episodes": 10, "success_rate": success, "success_ci95": [lo, hi],
                       "student_share_of_steps": None if share is None else 1 - share})


def test_round_rows_and_their_plot(tmp_path, factqa):
    from agentkd import CodeActAgent, ReferencePolicy, RunFolder

    run = tmp_path / "r"
    folder = RunFolder(run)
    folder.start({"command": "collect", "teacher": "reference"}, {})
    for task in factqa.tasks("train", 2):
        folder.append(CodeActAgent(factqa, ReferencePolicy()).run(task))
    folder.close()
    layout = RunLayout(run)
    assert round_rows(run) == [] and rounds_figure(gather(run)).svg is None  # no evaluation, no round: no plot
    layout.eval_dir.mkdir()
    layout.eval_report("student-sft").write_text(report(0.3))
    layout.eval_report("cascade-sft").write_text(report(0.8, share=0.6))
    one = layout.round_layout(1)
    one.root.mkdir(parents=True)
    one.round_summary.write_text(json.dumps({"round": 1, "teacher_episodes": 4, "new_teacher_episodes": 2,
                                             "student_success": 0.5, "student_ci95": [0.2, 0.8], "cascade_success": 0.9,
                                             "cascade_ci95": [0.6, 1.0], "cascade_teacher_share": 0.4}))
    layout.round_layout(2).root.mkdir()  # an unfinished round: no row
    rows = round_rows(run)
    assert [(r["round"], r["teacher_episodes"], r["student_success"], r["cascade_teacher_share"]) for r in rows] == [
        (0, 2, 0.3, 0.6), (1, 4, 0.5, 0.4)]
    figure = rounds_figure(gather(run))
    assert figure.svg is not None and figure.svg.count("<polyline") == 3
    assert "round 1: student success 50%, 95% CI 20%–80%; 4 teacher episodes" in figure.svg


def _write(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))


def _failed_student_copy(trajectory):
    """The teacher's episode as a failed student episode that left its path at step 0."""
    steps = [s.model_copy(update={"role": "student"}) for s in trajectory.steps]
    steps[0] = steps[0].model_copy(update={"output": 'Thought: guess.\n```python\nfinal_answer("nobody")\n```'})
    return trajectory.model_copy(update={"steps": steps, "success": False, "score": 0.0, "policy": "student"})


def _model(spec):
    """The student model of a student or cascade policy spec."""
    return spec.settings["model"] if spec.kind == "student" else spec.settings["student"]["settings"]["model"]


def test_a_dpo_round_trains_the_preference_stage_on_its_pairs_and_evaluates_that_student(tmp_path, factqa):
    """With --dpo, after the round's SFT student the stage machine asks for the preference stage when the round's
    files give pairs (a failed probe episode of a task the round's teacher solved), then evaluates the DPO student
    under -dpo names; a round without pairs evaluates its SFT student instead (scripted files, nothing trained)."""
    from agentkd import CodeActAgent, ReferencePolicy, RunFolder
    from agentkd.collect.targets import TargetChoice, TargetPlan
    from agentkd.run.layout import TRAINED, TRAINED_DPO

    settings = ImproveSettings(rounds=1, budget=1, probe_tasks=1, dpo=True)
    run = tmp_path / "r"
    base = RunFolder(run)
    base.start({"command": "collect", "teacher": "reference"}, {})
    train = factqa.tasks("train", 2)
    base.append(CodeActAgent(factqa, ReferencePolicy()).run(train[0]))
    base.close()
    layout = RunLayout(run)
    _write(layout.student_merged / "config.json", "{}")
    for name in ("student-sft", "cascade-sft"):
        _write(layout.eval_report(name), report(0.5))
    one = layout.round_layout(1)
    _write(one.round_plan, {"round": 1, "settings": settings.identity(), "probe": [train[1].id]})
    _write(one.eval_report("probe"), report(0.0))
    solved = CodeActAgent(factqa, ReferencePolicy()).run(train[1])
    _write(one.targets("probe"), TargetPlan(eval="probe", budget=1, chosen=[TargetChoice(
        task_id=train[1].id, reason="failed", score=1.0)]).model_dump_json())
    folder = RunFolder(one.root)
    folder.start({"command": "collect", "teacher": "reference"}, {})
    folder.append(solved)
    folder.close()
    _write(one.student_merged / "config.json", "{}")

    # no pair yet (the probe's episodes are not written): the round evaluates its SFT student
    stage = next_stage(run, settings)
    assert (stage.round, stage.name) == (1, "eval-student")
    assert stage.action.name == "student-sft" and _model(stage.action.policy) == TRAINED

    _write(one.eval_trajectories("probe"), _failed_student_copy(solved).model_dump_json() + "\n")
    stage = next_stage(run, settings)
    assert (stage.round, stage.name) == (1, "dpo")
    assert stage.action.stage == "dpo" and stage.action.run == one.root

    _write(one.dpo_merged / "config.json", "{}")
    stage = next_stage(run, settings)
    assert (stage.round, stage.name) == (1, "eval-student")
    assert stage.action.name == "student-dpo" and _model(stage.action.policy) == TRAINED_DPO
    _write(one.eval_report("student-dpo"), report(0.6))
    stage = next_stage(run, settings)
    assert stage.action.name == "cascade-dpo" and _model(stage.action.policy) == TRAINED_DPO
