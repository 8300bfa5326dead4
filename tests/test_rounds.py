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
