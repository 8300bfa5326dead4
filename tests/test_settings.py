"""One place per setting: every default is written once, on a settings model, and read everywhere else."""

import ast
import inspect
import re
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.policies.settings import CascadeOptions, SelfConsistentOptions, StudentSettings
from agentkd.sampling import SFT_STUDENT_MAX_TOKENS, STUDENT_MAX_TOKENS, TEACHER_MAX_TOKENS, Sampling
from agentkd.specs import SpecError, with_settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_MODULES = {ROOT / "agentkd" / "sampling.py", ROOT / "agentkd" / "policies" / "settings.py"}


def commands() -> dict[str, tuple[object, object]]:
    """Every leaf command: its name (`models list`) -> (the click command, the function typer wraps)."""
    functions = {info.name: info.callback for info in app.registered_commands}
    for group in app.registered_groups:
        functions.update({f"{group.name} {info.name}": info.callback
                          for info in group.typer_instance.registered_commands})

    def leaves(command: object, path: list[str]):
        for name, inner in getattr(command, "commands", {}).items():
            yield from leaves(inner, [*path, name])
        if not getattr(command, "commands", None):
            yield " ".join(path), command

    return {name: (command, functions[name]) for name, command in leaves(typer.main.get_command(app), [])}


def job_fields() -> dict[tuple[str, str], tuple[type[BaseModel], str]]:
    """Options whose settings live on job models the command line cannot import while it parses (they load the
    environment API, the sandbox or litellm): the test holds their defaults equal instead."""
    from agentkd.collect.job import CollectJob
    from agentkd.evaluate.job import EvalJob
    from agentkd.gateway.settings import GatewaySettings
    from agentkd.pipeline import PipelineSettings
    from agentkd.rounds.settings import ImproveSettings
    from agentkd.sandbox.host import SandboxConfig
    from agentkd.scale.backend import Backend
    from agentkd.store.build import IndexJob
    from agentkd.train.job import TrainJob

    fields = {
        ("collect", "--split"): (CollectJob, "split"), ("collect", "--concurrency"): (CollectJob, "concurrency"),
        ("collect", "--samples-per-task"): (CollectJob, "samples_per_task"),
        ("collect", "--budget"): (CollectJob, "budget"), ("collect", "--group-by"): (CollectJob, "group_by"),
        ("collect", "--exec-timeout"): (SandboxConfig, "timeout_s"),
        ("eval", "--split"): (EvalJob, "split"), ("eval", "--concurrency"): (EvalJob, "concurrency"),
        ("index", "--window"): (IndexJob, "window"), ("index", "--hnsw-threshold"): (IndexJob, "hnsw_threshold"),
        ("train", "--stage"): (TrainJob, "stage"),
        ("pipeline", "--env"): (PipelineSettings, "env"), ("pipeline", "--teacher"): (PipelineSettings, "teacher"),
        ("pipeline", "--route"): (PipelineSettings, "route"),
        ("pipeline", "--train-tasks"): (PipelineSettings, "train_tasks"),
        ("pipeline", "--eval-tasks"): (PipelineSettings, "eval_tasks"),
        ("gateway", "--port"): (GatewaySettings, "port"), ("gateway", "--host"): (GatewaySettings, "host"),
        ("gateway", "--success-threshold"): (GatewaySettings, "success_threshold"),
    }
    for command in ("collect", "eval"):
        fields[(command, "--backend")] = (Backend, "kind")
        fields[(command, "--workers")] = (Backend, "workers")
    for name in ("rounds", "budget", "probe_tasks", "probe", "group_by", "eval_tasks", "concurrency"):
        fields[("improve", "--" + name.replace("_", "-"))] = (ImproveSettings, name)
    return fields


def function_defaults() -> dict[tuple[str, str], tuple[object, str]]:
    """Options whose setting is a library function's parameter."""
    from agentkd.agent.env_check import check_environment

    return {("check-env", "--n"): (check_environment, "n")}


COMMAND_ONLY = {
    ("pipeline", "--run"): "the demo's run folder: a default of the command itself",
    ("serve", "--port"): "where `agentkd serve` listens: a default of the command itself",
    ("serve", "--backend"): "a choice of the command itself (auto picks vLLM or llama.cpp)",
    ("export", "--format"): "a choice of the command itself (gguf, or a dataset format)",
    ("export", "--type"): "the GGUF weight type the command asks llama.cpp's converter for",
    ("export", "--student"): "which of the run's students the command exports",
    ("export", "--what"): "a choice of the command itself",
    ("export", "--split"): "a choice of the command itself",
    ("gateway", "--max-body-mb"): "GatewaySettings.max_body_bytes in MiB (the test below holds them equal)",
}


def test_every_option_default_is_the_default_of_one_settings_field():
    fields, functions = job_fields(), function_defaults()
    unaccounted, different, read = [], [], 0
    for name, (command, function) in commands().items():
        parameters = inspect.signature(function).parameters
        for param in command.params:
            if not getattr(param, "opts", None) or param.default in (None, False, ()) or param.name == "help":
                continue
            flag = max(param.opts, key=len)
            source = getattr(parameters[param.name].default, "setting", None)
            if source is not None:  # built by field_option from the field
                model, field = source
                expected = model.model_fields[field].default
                read += 1
            elif (name, flag) in fields:
                model, field = fields[(name, flag)]
                expected = model.model_fields[field].default
            elif (name, flag) in functions:
                owner, argument = functions[(name, flag)]
                expected = inspect.signature(owner).parameters[argument].default
            elif (name, flag) in COMMAND_ONLY:
                continue
            else:
                unaccounted.append(f"agentkd {name} {flag} (default {param.default!r})")
                continue
            if param.default != expected:
                different.append(f"agentkd {name} {flag}: {param.default!r} here, {expected!r} on the settings")
    assert not unaccounted, ("defaults written in a command: take them from a settings field (cli.common."
                             "field_option) or name their field in this test:\n" + "\n".join(unaccounted))
    assert not different, "defaults written twice and already apart:\n" + "\n".join(different)
    assert read >= 10


def flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_options_read_from_settings_show_the_fields_default_and_bounds():
    from agentkd.train.config import TrainConfig

    result = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "200"})
    text = flat(result.output)
    assert f"[default: {CascadeOptions().temperature}]" in text and f"[default: {STUDENT_MAX_TOKENS}]" in text
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert f"[default: ({TrainConfig().epochs})]" in flat(result.output)
    for args, says in ((["--samples", "0"], "Invalid value for '--samples': Input should be greater than or equal "
                                            "to 1"),
                       (["--agreement", "vote"], "'vote' is not one of 'code', 'result', 'majority'")):
        refused = CliRunner().invoke(app, ["eval", "--run", "r", "--policy", "cascade", *args])
        assert refused.exit_code == 2 and says in flat(refused.output)
    refused = CliRunner().invoke(app, ["train", "--run", "r", "--epochs", "0"])
    assert refused.exit_code == 2 and "0.0 is not > 0" in flat(refused.output)


def test_no_help_restates_a_default_by_hand():
    written = []
    for name, (command, _function) in commands().items():
        for param in command.params:
            if re.search(r"\(default:? \d", getattr(param, "help", None) or ""):
                written.append(f"agentkd {name} {max(param.opts, key=len)}: {param.help}")
    assert not written, "the help shows the default itself ([default: ...]):\n" + "\n".join(written)


SAMPLING_DEFAULTS = {"samples": {CascadeOptions().samples}, "temperature": {CascadeOptions().temperature},
                     "max_tokens": {TEACHER_MAX_TOKENS, STUDENT_MAX_TOKENS, SFT_STUDENT_MAX_TOKENS}}


def written_defaults(tree: ast.AST) -> list[tuple[int, str, object]]:
    """(line, setting, value) for each numeric literal given to a sampling setting: a parameter default, a keyword,
    a class field (or its Field(...)), a dict entry; and every literal equal to the cascade's temperature."""
    found = []

    def literal(node: ast.AST | None) -> object:
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Field" and node.args:
            node = node.args[0]
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) else None

    def note(line: int, name: str, node: ast.AST | None) -> None:
        value = literal(node)
        if name in SAMPLING_DEFAULTS and value in SAMPLING_DEFAULTS[name] and not isinstance(value, bool):
            found.append((line, name, value))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
                note(node.lineno, arg.arg, default)
            for arg, default in zip(args.kwonlyargs, args.kw_defaults):
                note(node.lineno, arg.arg, default)
        elif isinstance(node, ast.keyword) and node.arg:
            note(node.value.lineno, node.arg, node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            note(node.lineno, node.target.id, node.value)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    note(node.lineno, key.value, value)
        elif isinstance(node, ast.Constant) and node.value == CascadeOptions().temperature:
            found.append((node.lineno, "literal", node.value))
    return found


def test_sampling_defaults_are_written_only_in_the_settings_modules():
    files = [*sorted((ROOT / "agentkd").rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py"))]
    elsewhere = [f"{path.relative_to(ROOT)}:{line}: {name} = {value}"
                 for path in files if path not in SETTINGS_MODULES
                 for line, name, value in written_defaults(ast.parse(path.read_text()))]
    assert not elsewhere, ("sampling defaults belong in agentkd/sampling.py or agentkd/policies/settings.py; "
                           "read them from there:\n" + "\n".join(elsewhere))
    planted = ast.parse("def f(samples=3, temperature=0.7):\n    return g(max_tokens=256, x=0.7)\n"
                        "class S:\n    max_tokens: int = Field(96, ge=1)\n")
    assert {(name, value) for _, name, value in written_defaults(planted)} == {
        ("samples", 3), ("temperature", 0.7), ("max_tokens", 256), ("literal", 0.7), ("max_tokens", 96)}


def test_the_cascade_and_self_consistency_share_one_sampling_default():
    assert CascadeOptions().sampling == SelfConsistentOptions().sampling
    assert CascadeOptions().sampling.temperature == CascadeOptions.model_fields["temperature"].default
    assert StudentSettings().sampling == Sampling(max_tokens=STUDENT_MAX_TOKENS)


def test_a_policy_takes_its_settings_object_and_validates_them_once():
    from agentkd import CascadePolicy, ModelClient, ReferencePolicy, SelfConsistentPolicy, StudentPolicy

    student = StudentPolicy(ModelClient("smollm2-135m"))
    options = CascadeOptions(samples=2, agreement="majority")
    by_object = CascadePolicy(student, ReferencePolicy(), options)
    assert by_object.options == options == CascadePolicy(student, ReferencePolicy(), samples=2,
                                                         agreement="majority").options
    assert by_object.options.needed == 2 and CascadeOptions(samples=5, agreement="majority").needed == 3
    assert by_object.spec.settings["samples"] == 2
    with pytest.raises(ValidationError, match="samples"):
        CascadePolicy(student, ReferencePolicy(), samples=0)
    with pytest.raises(TypeError, match="not both"):
        CascadePolicy(student, ReferencePolicy(), options, samples=3)
    assert SelfConsistentPolicy(student).options == SelfConsistentOptions()
    with pytest.raises(ValidationError, match="temperature"):
        SelfConsistentPolicy(student, temperature=-1)


def test_top_p_and_stop_reach_the_model_and_are_recorded_only_when_set():
    from agentkd.policies.registry import build_policy, student_spec, teacher_spec

    plain = student_spec("smollm2-135m", demos=False)
    assert "top_p" not in plain.settings and "stop" not in plain.settings
    assert "top_p" not in teacher_spec("hosted_vllm/t").settings
    spec = student_spec("smollm2-135m", demos=False, top_p=0.9, stop=["\nObservation:"])
    policy = build_policy(spec)
    assert policy.client.top_p == 0.9 and policy.stop == ["\nObservation:"] and policy.spec == spec
    teacher = build_policy(teacher_spec("hosted_vllm/t", top_p=0.5))
    assert teacher.client.top_p == 0.5 and teacher.spec.settings["top_p"] == 0.5
    with pytest.raises(SpecError, match="top_p"):
        student_spec("smollm2-135m", demos=False, top_p=1.5)


def test_set_reaches_nested_settings_and_a_wrong_key_is_named():
    data = {"samples": 3, "student": {"kind": "icd", "settings": {"k": 4}}, "train": {"lr": 0.001}}
    changed = with_settings(data, ["samples=5", "student.k=2", "train.lr=5e-4", "agreement=code"])
    assert changed == {"samples": 5, "student": {"kind": "icd", "settings": {"k": 2}}, "train": {"lr": 0.0005},
                       "agreement": "code"}
    assert data["samples"] == 3  # a copy
    for bad, says in (("samples", "not KEY=VALUE"), ("samples.x=1", "samples holds no settings")):
        with pytest.raises(SpecError, match=says):
            with_settings(data, [bad])
    refused = CliRunner().invoke(app, ["eval", "--run", "r", "--policy", "cascade", "--teacher", "reference",
                                       "--set", "student.nope=1"])
    assert refused.exit_code == 1 and "nope" in refused.output and "Extra inputs are not permitted" in refused.output
    refused = CliRunner().invoke(app, ["improve", "--run", "r", "--set", "train.nope=1"])
    assert refused.exit_code == 1 and "train.nope" in flat(refused.output)


def test_an_option_whose_default_lives_on_the_job_still_knows_when_it_was_given(tmp_path):
    args = ["collect", "--env", "factqa", "--teacher", "reference", "--run", str(tmp_path / "r")]
    refused = CliRunner().invoke(app, [*args, "--budget", "3"])
    assert refused.exit_code == 2 and "--budget applies to a targeted collection" in flat(refused.output)
    assert not (tmp_path / "r").exists()


def test_the_gateway_body_limit_in_mib_is_its_settings_limit_in_bytes():
    from agentkd.cli.gateway import gateway_command
    from agentkd.gateway.settings import GatewaySettings

    given = inspect.signature(gateway_command).parameters["max_body_mb"].default
    assert int(given * 1024 * 1024) == GatewaySettings.model_fields["max_body_bytes"].default
