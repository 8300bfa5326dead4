"""`agentkd bench icd`: the policy names of --policies, the evaluation names they are stored under, and (slow) the
experiment end to end with the reference teacher, resumed and tabled again."""

import json

import pytest
from typer.testing import CliRunner

from agentkd.bench.icd import IcdBench, eval_name
from agentkd.bench.settings import IcdBenchSettings
from agentkd.cli import app
from agentkd.policies.names import PolicyNameError
from agentkd.policies.registry import teacher_spec
from agentkd.train.config import TrainConfigError

TEACHER = teacher_spec("hosted_vllm/qwen2.5-coder-1.5b")
STUDENT = "gguf/qwen2.5-coder-0.5b"


def spec(name: str) -> dict:
    settings = IcdBenchSettings(teacher="hosted_vllm/qwen2.5-coder-1.5b", student=STUDENT, k=4, max_tokens=256)
    return IcdBench("runs/unused", settings).policy(name).model_dump(mode="json")


def test_cascade_names_carry_samples_agreement_demos_and_follow_up():
    plain = spec("cascade-result")["settings"]
    assert (plain["samples"], plain["temperature"], plain["agreement"], plain["min_agree"]) == (3, 0.7, "result", None)
    assert plain["student"]["kind"] == "icd" and plain["student"]["settings"]["k"] == 4
    varied = spec("cascade-code-n2-t0.5-m2-online-k2-nofollow")["settings"]
    assert (varied["samples"], varied["temperature"], varied["agreement"], varied["min_agree"], varied["online"]) == (
        2, 0.5, "code", 2, True)
    assert varied["student"]["settings"]["k"] == 2 and varied["student"]["settings"]["code_followup"] is False
    assert spec("icd-k1")["settings"]["k"] == 1 and spec("student")["kind"] == "student"
    held = spec("cascade-result-hold-k2")["settings"]["student"]["settings"]
    assert held["code_before_end"] is True and held["k"] == 2 and "code_before_end" not in spec("icd")["settings"]
    assert spec("teacher") == TEACHER.model_dump(mode="json")
    with pytest.raises(PolicyNameError, match="unknown policy 'cascade-vote'"):
        spec("cascade-vote")


def test_an_unknown_policy_name_stops_the_command_before_any_stage(tmp_path):
    run = tmp_path / "r"
    done = CliRunner().invoke(app, ["bench", "icd", "--run", str(run), "--teacher", "reference",
                                    "--policies", "teacher,cascade-vote"])
    assert done.exit_code == 1 and "unknown policy 'cascade-vote'" in done.output
    assert not run.exists()


def test_sft_fine_tunes_the_frozen_students_model(tmp_path):
    def train_config(student: str):
        settings = IcdBenchSettings(teacher="reference", student=student, sft=True, epochs=1, policies="sft")
        (stage,) = [s for s in IcdBench(tmp_path / "r", settings).stages() if s.title == "fine-tune the student"]
        return stage.job.config

    config = train_config(STUDENT)
    assert (config.student, config.epochs) == ("qwen2.5-coder-0.5b", 1)
    assert train_config("gguf/smollm2-135m").student == "smollm2-135m"
    with pytest.raises(TrainConfigError, match="'openai/gpt-4.1-mini' is not one agentkd can train.*qwen2.5-coder-0.5b"):
        train_config("openai/gpt-4.1-mini")
    done = CliRunner().invoke(app, ["bench", "icd", "--run", str(tmp_path / "cli"), "--teacher", "reference", "--sft",
                                    "--student", "openai/gpt-4.1-mini", "--policies", "teacher"])
    assert done.exit_code == 1 and "not one agentkd can train" in done.output and not (tmp_path / "cli").exists()


def test_a_dev_slice_gets_a_file_name_of_its_own():
    assert eval_name("icd-k2", "train[900:910]") == "icd-k2@train_900-910"
    assert eval_name("teacher", "test") == "teacher@test"


@pytest.mark.slow
def test_the_experiment_runs_its_stages_resumes_and_tables_what_finished(tmp_path):
    run = tmp_path / "r"
    args = ["bench", "icd", "--run", str(run), "--env", "factqa", "--teacher", "reference", "--train", "3", "--n",
            "2", "--split", "train[900:902]", "--policies", "teacher"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    for number, title in enumerate(("collect teacher trajectories", "index the teacher's steps",
                                    "evaluate teacher on train[900:902]"), 1):
        assert f"[{number}/3] {title}" in first.output
    table = run / "eval" / "tables" / "icd@train_900-902.json"
    assert f"table: {table}" in first.output
    record = json.loads(table.read_text())
    assert [row["name"] for row in record["rows"]] == ["teacher"] and record["tasks"] == 2
    assert record["collection"]["episodes"] == 3 and record["teacher"] == "reference"
    assert [record["settings"]["prices"]["teacher"][key] for key in ("prompt", "completion", "cached_prompt")] == [3.0, 15.0, 0.3]
    assert (run / "eval" / "teacher@train_900-902.json").is_file()

    again = CliRunner().invoke(app, args)  # every stage resumes: nothing is run twice
    assert again.exit_code == 0, again.output
    assert len((run / "trajectories.jsonl").read_text().splitlines()) == 3
    assert len((run / "eval" / "teacher@train_900-902.jsonl").read_text().splitlines()) == 2

    other = CliRunner().invoke(app, [*args[:-2], "--n", "5", "--table-only"])  # 2 of 5 tasks: not finished
    assert other.exit_code == 0 and "the table needs the teacher's evaluation of this split too" in other.output
    partial = CliRunner().invoke(app, [*args[:-2], "--n", "5", "--table-only", "--partial",
                                       "--teacher-price", "3,15,0.3"])
    assert partial.exit_code == 0, partial.output
    record = json.loads(table.read_text())
    assert record["tasks"] == 2 and record["settings"]["prices"]["teacher"]["cached_prompt"] == 0.3
