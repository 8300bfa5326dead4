"""The README's main job, `agentkd pipeline`, end to end at a tiny size (real commands, real SmolLM2)."""

import json
import subprocess
import sys

import pytest

from agentkd.pipeline import PipelineSettings, stages

pytestmark = pytest.mark.slow


def test_pipeline_runs_every_stage_and_prints_one_table(tmp_path):
    run = tmp_path / "demo"
    args = ["--run", str(run), "--train-tasks", "8", "--epochs", "1", "--eval-tasks", "2", "--samples", "2",
            "--max-steps", "3"]
    done = subprocess.run([sys.executable, "-m", "agentkd.cli", "pipeline", *args], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("teacher", "student-sft", "cascade-sft"):
        report = json.loads((run / "eval" / f"{name}.json").read_text())
        assert report["episodes"] == 2, name
        assert name in done.stdout
    assert (run / "student" / "merged" / "agentkd_student.json").is_file()
    assert (run / "index" / "meta.json").is_file()
    assert "agentkd pipeline: factqa" in done.stdout and "teacher share" in done.stdout
    cascade = json.loads((run / "eval" / "cascade-sft.json").read_text())
    assert cascade["deferral_rate"] is not None
    assert (run / "report.html").is_file() and f"report: {run / 'report.html'}" in done.stderr

    # Re-running keeps the trained student and resumes the finished evaluations.
    planned = stages(run, PipelineSettings(train_tasks=8, eval_tasks=2))
    assert [s.job for s in planned if s.title == "fine-tune the student"] == [None]


def test_pipeline_stops_at_the_failing_stage(tmp_path):
    done = subprocess.run([sys.executable, "-m", "agentkd.cli", "pipeline", "--run", str(tmp_path / "x"),
                           "--env", "no_such_env"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "stage 1 (collect teacher trajectories) failed" in done.stderr
