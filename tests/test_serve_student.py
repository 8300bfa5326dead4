"""`agentkd serve --student RUN`: the backend choice, and (slow) end to end on a CPU: export a run's SFT data,
train a student from the export, serve it with llama.cpp and run the cascade against it through `agentkd eval`."""

import asyncio
import json

import pytest
from servers import agentkd_server, wait_for_models
from typer.testing import CliRunner

from agentkd import ReferencePolicy
from agentkd.cli import app
from agentkd.collect import collect
from agentkd.run import RunFolder, RunLayout
from agentkd.train.serving import StudentServerError, choose_backend, vllm_command, vllm_usable


def test_the_backend_is_vllm_only_where_it_can_run():
    problem = vllm_usable()
    assert choose_backend("auto") == ("llama.cpp" if problem else "vllm")
    assert choose_backend("llama.cpp") == "llama.cpp"
    if problem:
        with pytest.raises(StudentServerError, match="--backend llama.cpp"):
            choose_backend("vllm")
    with pytest.raises(StudentServerError, match="unknown backend"):
        choose_backend("tgi")


def test_vllm_serves_the_merged_weights_under_the_given_name(tmp_path):
    command = vllm_command(tmp_path / "student" / "merged", "r-student", "127.0.0.1", 8001, max_model_len=4096)
    assert command[1:3] == ["serve", str(tmp_path / "student" / "merged")]
    flags = dict(zip(command[3::2], command[4::2]))
    assert flags == {"--served-model-name": "r-student", "--host": "127.0.0.1", "--port": "8001", "--dtype": "auto",
                     "--max-model-len": "4096"}


def test_serve_refuses_bad_input(tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["serve"]).exit_code == 2
    assert runner.invoke(app, ["serve", "smollm2-135m", "--student", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["serve", "smollm2-135m", "--name", "x"]).exit_code == 2
    result = runner.invoke(app, ["serve", "--student", str(tmp_path)])
    assert result.exit_code == 1 and "agentkd train" in result.output  # no trained student in an empty folder


@pytest.mark.slow
def test_a_student_trained_from_an_export_serves_the_cascade(factqa, tmp_path):
    source = tmp_path / "source"
    folder = RunFolder(source)
    folder.start({"command": "collect", "env": "factqa", "teacher": "reference", "split": "train"}, {})
    asyncio.run(collect(factqa, ReferencePolicy(), factqa.tasks("train", 4), folder, concurrency=2))
    runner = CliRunner()
    export = tmp_path / "sft"
    result = runner.invoke(app, ["export", "--run", str(source), "--format", "parquet", "--what", "sft",
                                 "--out", str(export)])
    assert result.exit_code == 0, result.output

    run = tmp_path / "student-run"  # a fresh run folder: the export brings the env and the teacher
    config = tmp_path / "tiny.yaml"
    config.write_text("batch_size: 1\nlora_r: 4\nwarmup_steps: 0\n")
    result = runner.invoke(app, ["train", "--run", str(run), "--dataset", str(export), "--config", str(config),
                                 "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    layout = RunLayout(run)
    assert layout.student_gguf.is_file() and RunFolder(run).env_spec() == RunFolder(source).env_spec()
    assert json.loads(layout.student_data.read_text())["dataset"] == str(export.resolve())
    layout.student_gguf.unlink()  # `agentkd serve` exports it again when it is missing

    with agentkd_server("--student", str(run), "--name", "tiny-student") as (process, base):
        assert wait_for_models(base, process) == ["tiny-student"]
        assert layout.student_gguf.is_file()
        result = runner.invoke(app, ["eval", "--run", str(run), "--policy", "cascade", "--student", "trained",
                                     "--student-api-base", base, "--n", "1", "--samples", "2", "--max-tokens", "64",
                                     "--concurrency", "1"])
        assert result.exit_code == 0, result.output
        # The deployable agent, too: the run's student served, the run's teacher (reference) for deferred steps.
        from agentkd import CascadedAgent

        agent = CascadedAgent.from_run(run, student="trained", student_api_base=base, samples=2, max_steps=2)
        deployed = agent.run(factqa.tasks("test")[1])
        assert deployed.policy == "cascade:hosted_vllm/tiny-student+teacher:reference" and deployed.steps
        assert deployed.usage_by_role()["student"].completion_tokens > 0
    trajectory = json.loads(layout.eval_trajectories("cascade-sft").read_text().splitlines()[0])
    student = trajectory["policy_spec"]["settings"]["student"]
    assert student["kind"] == "student" and student["settings"]["model"] == "trained"  # short prompt, no demos
    assert student["settings"]["api_base"] == base
    assert trajectory["policy"] == "cascade:hosted_vllm/tiny-student+teacher:reference"  # the served model acted
    # The served student sampled every step (its tokens are counted) and the reference teacher took deferred ones.
    assert trajectory["steps"] and all(len(step["candidates"]) == 2 for step in trajectory["steps"])
    report = json.loads(layout.eval_report("cascade-sft").read_text())
    assert report["episodes"] == 1 and report["per_episode_by_role"]["student"]["completion_tokens"] > 0
