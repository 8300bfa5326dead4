"""An evaluation's identity: what must match to resume it (the server address is not part of it)."""

import json

from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.evaluate.job import EvalJob, prepare_eval, without_addresses
from agentkd.evaluate.runner import eval_folder
from agentkd.policies.registry import student_spec, teacher_spec, validate_policy_spec
from agentkd.specs import PolicySpec


def cascade(port: int, temperature: float = 0.7) -> PolicySpec:
    return validate_policy_spec(PolicySpec(kind="cascade", settings={
        "student": student_spec("gguf/qwen2.5-coder-0.5b", demos=False, api_base=f"http://127.0.0.1:{port}/v1"),
        "teacher": teacher_spec("hosted_vllm/qwen2.5-coder-1.5b", api_base=f"http://127.0.0.1:{port}/v1"),
        "temperature": temperature}))


def test_the_same_model_served_elsewhere_resumes_and_other_settings_are_refused(tmp_path):
    run = tmp_path / "r"
    assert CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--n", "1",
                                    "--run", str(run)]).exit_code == 0
    first = EvalJob(run=run, policy=cascade(8091), name="c")
    assert "api_base" not in json.dumps(first.identity())
    assert EvalJob(run=run, policy=cascade(8092), name="c").identity() == first.identity()
    assert EvalJob(run=run, policy=cascade(8091, 0.3), name="c").identity() != first.identity()
    # a record written when the address was part of the identity is upgraded, not refused
    folder = eval_folder(run, "c")
    old = {**first.identity(), "policy": first.policy.model_dump(mode="json")}
    folder.start(identity=old, details={})
    folder.close()
    assert without_addresses(old) == first.identity() != old
    prepare_eval(EvalJob(run=run, policy=cascade(8093), name="c"))
    assert folder.read_config()["identity"] == first.identity()
