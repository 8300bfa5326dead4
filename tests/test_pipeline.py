"""The README's main job, `agentkd pipeline`, end to end at a tiny size (real commands, real SmolLM2)."""

import json
import os
import subprocess
import sys

import pytest

from agentkd.pipeline import PipelineSettings, stages

pytestmark = pytest.mark.slow


def test_pipeline_runs_every_stage_and_prints_one_table(tmp_path):
    run = tmp_path / "demo"
    args = ["--run", str(run), "--train-tasks", "8", "--epochs", "1", "--eval-tasks", "2", "--samples", "2",
            "--max-steps", "3", "--set", "calibrate_tasks=4"]
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
    for column in ("$ / episode", "list $ / episode", "x cheaper (list)", "break-even"):
        assert column in done.stdout, column
    assert "tokens counted with" in done.stderr and "teacher: $3 / $15 per 1M" in done.stderr
    teacher = json.loads((run / "eval" / "teacher.json").read_text())
    assert 0 < teacher["cost_per_episode_usd"] < teacher["list_cost_per_episode_usd"]  # the reference, priced
    cascade = json.loads((run / "eval" / "cascade-sft.json").read_text())
    assert cascade["deferral_rate"] is not None
    calibration = json.loads((run / "calibration" / "cascade.json").read_text())
    assert calibration["split"] == "train[8:12]" and cascade["details"]["policy_spec"]["settings"]["threshold"] == (
        calibration["chosen"]["threshold"])  # the cascade was evaluated at the calibrated threshold
    assert (run / "report.html").is_file() and f"report: {run / 'report.html'}" in done.stderr

    # Re-running keeps the trained student and resumes the finished evaluations.
    planned = stages(run, PipelineSettings(train_tasks=8, eval_tasks=2))
    assert [s.job for s in planned if s.title == "fine-tune the student"] == [None]


def test_pipeline_stops_at_the_failing_stage(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run([sys.executable, "-m", "agentkd.cli", "pipeline", "--run", str(tmp_path / "x"),
                           "--teacher", "openai/gpt-4o-mini", "--train-tasks", "2", "--eval-tasks", "1"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1
    assert "stage 1 (collect teacher trajectories) failed" in done.stderr and "OPENAI_API_KEY" in done.stderr
    assert not (tmp_path / "x").exists()  # no episode finished: nothing ties the folder to this job


def test_pipeline_refuses_an_unknown_environment_before_any_stage(tmp_path):
    done = subprocess.run([sys.executable, "-m", "agentkd.cli", "pipeline", "--run", str(tmp_path / "x"),
                           "--env", "no_such_env"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "cannot find environment 'no_such_env'" in done.stderr and "stage 1" not in done.stderr
    assert not (tmp_path / "x").exists()


def test_icd_route_plans_no_training_and_four_evaluations_of_the_frozen_student(tmp_path):
    planned = stages(tmp_path / "r", PipelineSettings(route="icd", eval_tasks=3))
    assert [s.title for s in planned][:2] == ["collect teacher trajectories", "index the teacher's steps"]
    assert not any(s.title == "fine-tune the student" for s in planned)
    assert [s.report for s in planned if s.report] == ["teacher", "student", "icd", "cascade"]
    specs = {s.report: getattr(s.job, "evaluation", s.job).policy for s in planned if s.report}
    assert specs["icd"].kind == "icd" and specs["icd"].settings["model"] == "gguf/qwen2.5-coder-0.5b"
    assert specs["student"].kind == "student" and specs["icd"].settings["max_tokens"] == 256
    cascade = specs["cascade"].settings
    assert cascade["student"]["kind"] == "icd" and cascade["teacher"]["kind"] == specs["teacher"].kind
    assert cascade["agreement"] == "confidence" and "calibrate the cascade's deferral on train[100:120]" in [
        s.title for s in planned]
    chosen = stages(tmp_path / "r", PipelineSettings(route="icd", student="smollm2-135m"))
    assert {s.job.policy.settings.get("model") for s in chosen if s.report in ("student", "icd")} == {"smollm2-135m"}


def test_pipeline_refuses_an_unknown_route(tmp_path):
    done = subprocess.run([sys.executable, "-m", "agentkd.cli", "pipeline", "--run", str(tmp_path / "x"),
                           "--route", "rl"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Invalid value for '--route': 'rl' is not one of 'sft', 'icd'" in done.stderr
    assert not (tmp_path / "x").exists()


def test_icd_route_end_to_end_with_the_real_frozen_student(tmp_path):
    """collect → index → teacher, student, ICD, cascade with the real Qwen2.5-Coder-0.5B (installed by setup.sh)."""
    from agentkd.models.distribution.catalog import QWEN_05B, status

    if not status(QWEN_05B).installed:
        pytest.skip("qwen2.5-coder-0.5b is not installed (agentkd models install qwen2.5-coder-0.5b)")
    run = tmp_path / "icd"
    args = ["--run", str(run), "--route", "icd", "--train-tasks", "4", "--eval-tasks", "1", "--samples", "2",
            "--max-steps", "2", "--set", "calibrate_tasks=2"]
    done = subprocess.run([sys.executable, "-m", "agentkd.cli", "pipeline", *args], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "AGENTKD_LLAMA_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (run / "student").exists()
    assert json.loads((run / "calibration" / "cascade.json").read_text())["split"] == "train[4:6]"
    for name in ("teacher", "student", "icd", "cascade"):
        report = json.loads((run / "eval" / f"{name}.json").read_text())
        assert report["episodes"] == 1, name
    icd_steps = [json.loads(line) for line in (run / "eval" / "icd.jsonl").read_text().splitlines()]
    assert icd_steps and all(s["policy"].startswith("icd:gguf/qwen2.5-coder-0.5b") for s in icd_steps)
    assert "evaluate the student with retrieved teacher steps (ICD)" in done.stderr
    assert all(name in done.stdout for name in ("teacher", "student", "icd", "cascade"))


def test_a_confidence_cascade_is_calibrated_on_the_train_tasks_after_the_collected_ones(tmp_path):
    from agentkd.calibrate import CalibratedEvalJob, CalibrateJob
    from agentkd.errors import CalibrationError

    planned = stages(tmp_path / "r", PipelineSettings(agreement="confidence", train_tasks=20, calibrate_tasks=5))
    calibrate = [s.job for s in planned if isinstance(s.job, CalibrateJob)]
    assert len(calibrate) == 1 and calibrate[0].split == "train[20:25]" and calibrate[0].target == 0.95
    cascade = next(s for s in planned if s.report == "cascade-sft")
    assert isinstance(cascade.job, CalibratedEvalJob) and cascade.job.evaluation.policy.settings["agreement"] == (
        "confidence")
    assert [s.title for s in planned].index("calibrate the cascade's deferral on train[20:25]") < [
        s.title for s in planned].index(cascade.title)
    with pytest.raises(CalibrationError, match="agentkd calibrate"):
        cascade.job.execute()  # the calibration has not run
    fixed = stages(tmp_path / "r", PipelineSettings(agreement="confidence", calibrate_tasks=0, threshold=0.8))
    assert not any(isinstance(s.job, (CalibrateJob, CalibratedEvalJob)) for s in fixed)
    assert next(s for s in fixed if s.report == "cascade-sft").job.policy.settings["threshold"] == 0.8


def test_the_main_jobs_student_trains_in_the_pipelines_batches(tmp_path):
    from agentkd.train.config import TrainConfig

    def trained(settings: PipelineSettings) -> TrainConfig:
        return next(s.job for s in stages(tmp_path / "r", settings) if s.title == "fine-tune the student").config

    assert trained(PipelineSettings()).batch_size == 4 != TrainConfig().batch_size
    assert trained(PipelineSettings(batch_size=2, epochs=1)).model_dump(include={"batch_size", "epochs"}) == {
        "batch_size": 2, "epochs": 1}
