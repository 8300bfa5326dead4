"""The spec layer: policy registry and specs, env specs and kwargs, the run layout, schema versions."""

import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from agentkd import (
    CodeActAgent,
    EnvSpec,
    PolicyOutput,
    PolicySpec,
    RunLayout,
    SpecError,
    Trajectory,
    build_policy,
    load_environment,
    policy_kinds,
    register_policy,
    resolve_env_spec,
    student_spec,
    teacher_spec,
    validate_policy_spec,
)
from agentkd.cli import app
from agentkd.policies.registry import BuildContext, UnknownPolicyError
from agentkd.records import SCHEMA_VERSION
from agentkd.specs import parse_env_args

ROOT = Path(__file__).resolve().parents[1]
COUNTED = ROOT / "tests" / "envs" / "counted_echo.py"


# policy specs and the registry ------------------------------------------------------------------
class ConstantSettings(BaseModel):
    answer: str


class ConstantPolicy:
    """The whole of a new policy kind: a class, a settings model and one registered builder."""

    role = "teacher"

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.name = f"constant:{answer}"

    async def act(self, ctx):
        return PolicyOutput(text=f"Thought: I know it.\n```python\nfinal_answer({self.answer!r})\n```", role="teacher")


@register_policy("constant", ConstantSettings)
def build_constant(settings: ConstantSettings, context: BuildContext) -> ConstantPolicy:
    """Always answers the same."""
    return ConstantPolicy(settings.answer)


def test_a_new_policy_kind_is_one_registration_and_trajectories_rebuild_it():
    env = load_environment(COUNTED)
    policy = build_policy({"kind": "constant", "settings": {"answer": "2"}})
    traj = CodeActAgent(env, policy).run(env.tasks("train")[2])
    assert traj.success and traj.policy_spec == PolicySpec(kind="constant", settings={"answer": "2"})
    line = traj.model_dump_json()
    rebuilt = build_policy(Trajectory.model_validate_json(line).policy_spec)
    again = CodeActAgent(env, rebuilt).run(env.tasks("train")[1])
    assert again.final_answer == "2" and not again.success
    assert "constant" in policy_kinds()


def test_builtin_kinds_round_trip_through_their_specs():
    assert {"reference", "llm", "student", "icd", "sc", "cascade"} <= set(policy_kinds())
    for spec in (
        teacher_spec("reference"),
        teacher_spec("hosted_vllm/qwen", api_base="http://127.0.0.1:9/v1", temperature=0.2),
        student_spec("smollm2-135m", demos=False, max_tokens=48),
        validate_policy_spec({"kind": "sc", "settings": {"student": {"kind": "student"}, "samples": 2}}),
        validate_policy_spec({"kind": "cascade", "settings": {"student": {"kind": "student"},
                                                              "teacher": {"kind": "reference"}, "agreement": "result"}}),
    ):
        policy = build_policy(spec)
        assert policy.spec == spec
        # a policy's own description (no builder involved) is the same spec
        rebuilt = type(policy).__init__  # noqa: F841 - the classes compute `spec` in __init__ too
        assert build_policy(policy.spec).spec == spec


def test_objects_describe_themselves_with_the_spec_the_registry_would_build():
    from agentkd import CascadePolicy, LLMPolicy, ModelClient, ReferencePolicy, StudentPolicy

    student = StudentPolicy(ModelClient("smollm2-135m", max_tokens=48))
    cascade = CascadePolicy(student, LLMPolicy("hosted_vllm/t", role="teacher"), samples=2, agreement="majority")
    assert build_policy(cascade.spec).spec == validate_policy_spec(cascade.spec) == cascade.spec
    assert ReferencePolicy().spec == PolicySpec(kind="reference")


def test_bad_specs_are_clear_errors():
    with pytest.raises(UnknownPolicyError, match="unknown policy kind 'oracle'.*cascade"):
        build_policy({"kind": "oracle"})
    with pytest.raises(SpecError, match="samples"):
        validate_policy_spec({"kind": "sc", "settings": {"student": {"kind": "student"}, "samples": 0}})
    with pytest.raises(SpecError, match="'student'.*max_tokens"):
        validate_policy_spec({"kind": "cascade", "settings": {"student": {"kind": "student", "settings": {
            "max_tokens": -1}}, "teacher": {"kind": "reference"}}})
    with pytest.raises(SpecError, match="kind 'student' or 'icd'"):
        build_policy({"kind": "cascade", "settings": {"student": {"kind": "reference"}, "teacher": {"kind": "reference"}}})
    with pytest.raises(SpecError, match="min_agree"):
        validate_policy_spec({"kind": "cascade", "settings": {"student": {"kind": "student"},
                                                              "teacher": {"kind": "reference"}, "min_agree": 4}})
    with pytest.raises(SpecError, match="run folder"):
        build_policy({"kind": "icd"})  # demonstrations need a run's index
    with pytest.raises(SpecError, match="trained"):
        build_policy({"kind": "student", "settings": {"model": "trained"}})


def test_the_fine_tuned_student_rule_lives_in_one_place(tmp_path):
    trained = tmp_path / "merged"
    trained.mkdir()
    (trained / "agentkd_student.json").write_text("{}")
    assert student_spec("smollm2-135m", demos=True, k=2).kind == "icd"
    assert student_spec("smollm2-135m", demos=True, k=2).settings["k"] == 2
    for model in ("trained", str(trained), f"hf/{trained}"):
        spec = student_spec(model, demos=True, k=2)
        assert spec.kind == "student" and "k" not in spec.settings and spec.settings["prompt"] == "auto"


def test_trajectory_schema_1_lines_still_read():
    v1 = {"schema_version": 1, "task": {"id": "a", "prompt": "p"}, "policy": "teacher:reference",
          "steps": [{"index": 0, "role": "teacher", "output": "x"}]}
    traj = Trajectory.model_validate_json(json.dumps(v1))
    assert traj.schema_version == 1 and traj.policy_spec is None and traj.steps[0].output == "x"
    assert Trajectory(task=traj.task, policy="p").schema_version == SCHEMA_VERSION


# environment specs ------------------------------------------------------------------------------
def test_env_specs_resolve_to_location_independent_targets(tmp_path, monkeypatch):
    assert resolve_env_spec("factqa").target == "agentkd_envs.factqa"
    assert resolve_env_spec("factqa:load_environment").target == "agentkd_envs.factqa:load_environment"
    monkeypatch.chdir(ROOT)
    relative = resolve_env_spec("tests/envs/counted_echo.py", {"n_tasks": 3})
    assert relative.target == str(COUNTED) and relative.kwargs == {"n_tasks": 3}
    monkeypatch.chdir(tmp_path)  # the resolved spec loads from anywhere; resolving again changes nothing
    assert resolve_env_spec(relative) == relative
    assert len(load_environment(relative).tasks("train")) == 3
    with pytest.raises(Exception, match="cannot find environment 'nope'.*factqa"):
        resolve_env_spec("nope")


def test_a_run_folder_named_after_its_env_does_not_shadow_the_built_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "factqa").mkdir()  # `agentkd collect --env factqa --run factqa`, then run again from here
    (tmp_path / "factqa" / "run.json").write_text("{}")
    assert resolve_env_spec("factqa").target == "agentkd_envs.factqa"
    (tmp_path / "mine").mkdir()
    with pytest.raises(Exception, match="mine is a folder without __init__.py"):
        resolve_env_spec("mine")
    (tmp_path / "mine" / "__init__.py").write_text("")  # a package folder here is an environment path
    assert resolve_env_spec("mine").target == str(tmp_path / "mine")


def test_env_args_parse_and_reach_the_environment_function():
    assert parse_env_args(["n_tasks=5", "prefix=q", "ratio=0.5", "flags=[1, 2]", "on=true"]) == {
        "n_tasks": 5, "prefix": "q", "ratio": 0.5, "flags": [1, 2], "on": True}
    for bad in (["n_tasks"], ["=3"], ["a=1", "a=2"]):
        with pytest.raises(SpecError):
            parse_env_args(bad)
    env = load_environment(EnvSpec(target=str(COUNTED), kwargs={"n_tasks": 2, "prefix": "z"}))
    assert [t.id for t in env.tasks("train")] == ["z0", "z1"]
    with pytest.raises(Exception, match="does not take these arguments"):
        load_environment(EnvSpec(target=str(COUNTED), kwargs={"colour": "red"}))


def test_env_args_are_recorded_and_resuming_with_others_is_refused_before_loading(tmp_path, monkeypatch):
    log = tmp_path / "loads.jsonl"
    monkeypatch.setenv("COUNTED_ECHO_LOG", str(log))
    monkeypatch.chdir(ROOT)
    run = tmp_path / "r"
    args = ["collect", "--env", "tests/envs/counted_echo.py", "--teacher", "reference", "--run", str(run)]
    ok = CliRunner().invoke(app, [*args, "--env-arg", "n_tasks=3", "--env-arg", "prefix=k"])
    assert ok.exit_code == 0, ok.output
    record = json.loads((run / "run.json").read_text())
    assert record["identity"]["env"] == str(COUNTED) and record["identity"]["env_kwargs"] == {"n_tasks": 3, "prefix": "k"}
    assert record["specs"]["env"]["kwargs"] == {"n_tasks": 3, "prefix": "k"}
    assert record["specs"]["teacher"] == {"kind": "reference", "settings": {}}
    assert sorted(json.loads(x)["task"]["id"] for x in (run / "trajectories.jsonl").read_text().splitlines()) == [
        "k0", "k1", "k2"]
    loads = len(log.read_text().splitlines())

    refused = CliRunner().invoke(app, [*args, "--env-arg", "n_tasks=4", "--env-arg", "prefix=k"])
    assert refused.exit_code == 1 and "different job" in refused.output and "env_kwargs" in refused.output
    assert len(log.read_text().splitlines()) == loads, "the identity check must run before the environment loads"

    monkeypatch.chdir(tmp_path)  # resumable (and evaluable) from another directory: the spec is absolute
    again = CliRunner().invoke(app, ["collect", "--env", str(COUNTED), "--teacher", "reference", "--run", str(run),
                                     "--env-arg", "prefix=k", "--env-arg", "n_tasks=3"])
    assert again.exit_code == 0, again.output
    assert len((run / "trajectories.jsonl").read_text().splitlines()) == 3


def test_a_run_of_agentkd_0_1_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    run = tmp_path / "old"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"identity": {
        "command": "collect", "env": "factqa", "env_version": "1-seed0", "teacher": "reference", "split": "train"}}))
    r = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--n", "1", "--run", str(run)])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "run.json").read_text())["identity"]["env"] == "agentkd_envs.factqa"


# the run layout ---------------------------------------------------------------------------------
def test_run_layout_keeps_reports_apart_and_failed_episodes_outside_the_student(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.failed_episodes.parent == layout.root
    assert layout.student_dir not in layout.failed_episodes.parents
    layout.eval_settings("cascade").parent.mkdir(parents=True)
    for path in (layout.eval_report("teacher"), layout.eval_report("cascade"), layout.eval_settings("cascade"),
                 layout.eval_trajectories("cascade"), layout.legacy_eval_settings("old")):
        path.write_text("{}")
    assert sorted(layout.eval_reports()) == ["cascade", "teacher"]
    with pytest.raises(ValueError, match="not a valid evaluation name"):
        layout.eval_report("../x")


def test_an_old_evaluation_settings_file_is_moved_out_of_the_reports(tmp_path):
    from agentkd.evaluate import eval_folder

    layout = RunLayout(tmp_path)
    layout.eval_dir.mkdir()
    layout.legacy_eval_settings("cascade").write_text(json.dumps({"identity": {"split": "test"}}))
    folder = eval_folder(tmp_path, "cascade")
    assert folder.config_path == layout.eval_settings("cascade") and folder.identity() == {"split": "test"}
    assert not layout.legacy_eval_settings("cascade").exists()


def test_help_prints_without_importing_the_heavy_stack():
    import subprocess
    import sys

    code = ("import sys\nfrom typer.testing import CliRunner\nfrom agentkd.cli import app\n"
            "for args in ([\"--help\"], [\"eval\", \"--help\"], [\"collect\", \"--help\"]):\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0\n"
            "print(sorted(m for m in ('litellm', 'langgraph', 'faiss', 'torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_fine_tuned_students_spec_leaves_out_the_observation_prefill_it_never_uses():
    from agentkd.policies.registry import student_spec
    from agentkd.policies.student import OBSERVATION_PREFILL

    trained = student_spec("trained", demos=False, max_tokens=96).settings
    # the exact spec agentkd recorded before the setting existed: its evaluations must still resume
    assert trained == {"model": "trained", "max_tokens": 96, "temperature": 0.0, "api_base": None, "prompt": "auto",
                       "history_steps": None}
    assert student_spec("gguf/qwen2.5-coder-0.5b", demos=True).settings["observation_prefill"] == OBSERVATION_PREFILL
    assert "observation_prefill" not in student_spec("x", demos=False, prompt="short").settings
