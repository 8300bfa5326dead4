"""One policy vocabulary: names such as `cascade-code-n2-k2-hold` parsed into specs and written back from them."""

import json

import pytest

from agentkd.evaluate.job import default_eval_name
from agentkd.policies.names import (
    POLICY_CHOICES,
    PolicyNameError,
    parse_policy_name,
    policy_name,
    read_policy_name,
)
from agentkd.policies.registry import student_spec, teacher_spec, validate_policy_spec
from agentkd.policies.settings import CascadeOptions, ICDSettings
from agentkd.run.layout import TRAINED, TRAINED_DPO, RunLayout
from agentkd.specs import PolicySpec, SpecError

TEACHER = teacher_spec("hosted_vllm/qwen2.5-coder-1.5b")
STUDENT = "gguf/qwen2.5-coder-0.5b"

CANONICAL = [
    "teacher", "student", "icd", "sc", "cascade", "student-sft", "student-dpo", "sc-sft", "cascade-sft",
    "cascade-dpo", "icd-sft", "icd-k2", "cascade-code", "cascade-majority-m2", "cascade-n2-t0.5-online",
    "cascade-code-n2-t0.5-m2-online-k2-nofollow-hold", "sc-n5-t1", "student-nofollow", "icd-k1-hold",
    "cascade-sft-code-n5",
]


def parse(name: str, **settings) -> PolicySpec:
    return parse_policy_name(name, TEACHER, STUDENT, **settings)


@pytest.mark.parametrize("name", CANONICAL)
def test_a_name_and_its_spec_round_trip(name):
    spec = parse(name)
    assert policy_name(spec) == name
    assert parse(policy_name(spec)) == spec == validate_policy_spec(spec)


def test_parts_come_in_any_order_and_defaults_drop_out_of_the_name():
    assert parse("cascade-k2-hold-result-n2") == parse("cascade-n2-k2-hold")
    assert policy_name(parse("cascade-result-n3-t0.7-k4")) == "cascade"
    assert parse("sft") == parse("student-sft")
    assert policy_name(parse("sft")) == "student-sft"


def test_a_name_sets_exactly_what_its_parts_say():
    cascade = parse("cascade-code-n2-t0.5-m2-online-k2-nofollow-hold").settings
    assert (cascade["samples"], cascade["temperature"], cascade["agreement"], cascade["min_agree"],
            cascade["online"]) == (2, 0.5, "code", 2, True)
    student = cascade["student"]["settings"]
    assert student["model"] == STUDENT and student["k"] == 2
    assert student["code_followup"] is False and student["code_before_end"] is True
    assert cascade["teacher"] == TEACHER.model_dump(mode="json")
    plain = parse("cascade").settings
    defaults = CascadeOptions()
    assert (plain["samples"], plain["temperature"], plain["agreement"]) == (
        defaults.samples, defaults.temperature, defaults.agreement)
    assert plain["student"]["kind"] == "icd" and plain["student"]["settings"]["k"] == ICDSettings().k
    trained = parse("cascade-sft").settings["student"]
    assert trained["kind"] == "student" and trained["settings"]["model"] == TRAINED
    assert parse("student-dpo").settings["model"] == TRAINED_DPO
    assert parse("teacher") == TEACHER


def test_settings_given_are_defaults_the_name_overrides():
    spec = parse("cascade-n2", samples=5, temperature=0.3, k=6, max_tokens=64, history_steps=3)
    assert spec.settings["samples"] == 2 and spec.settings["temperature"] == 0.3
    student = spec.settings["student"]["settings"]
    assert (student["k"], student["max_tokens"], student["history_steps"]) == (6, 64, 3)
    # settings a kind lacks are left out, not refused: `eval` passes the same options for every policy
    assert parse("student", samples=5, agreement="code", k=6, max_tokens=64) == student_spec(
        STUDENT, demos=False, max_tokens=64)
    assert "k" not in parse("cascade-sft", k=6).settings["student"]["settings"]
    assert "agreement" not in parse("sc", agreement="code").settings


@pytest.mark.parametrize(("name", "says"), [
    ("cascade-vote", "'vote' is not a part of a policy name"),
    ("oracle", "must start with one of teacher, student, icd, sc, cascade"),
    ("cascade-n2-n3", "sets samples twice"),
    ("student-n2", "samples part does not apply to student"),
    ("sc-code", "agreement part does not apply to sc"),
    ("cascade-sft-k2", "k part does not apply to cascade-sft (a fine-tuned student is given no demonstrations)"),
    ("student-k2", "k part does not apply to student (no demonstrations)"),
    ("teacher-sft", "trained part does not apply to teacher"),
    ("cascade-sft-nofollow", "code_followup part does not apply to cascade-sft (a fine-tuned student has the short "
                             "prompt)"),
    ("cascade-t", "'t' is not a part"),
])
def test_a_wrong_name_says_which_part_and_what_is_allowed(name, says):
    with pytest.raises(PolicyNameError, match="unknown policy") as caught:
        read_policy_name(name)
    message = str(caught.value)
    assert says in message and f"unknown policy {name!r}" in message
    if "twice" not in says:
        assert all(base in message for base in POLICY_CHOICES) and "nN" in message and "kK" in message
    assert isinstance(caught.value, SpecError)


def test_the_short_name_is_the_base_and_the_fine_tuned_student(tmp_path):
    assert policy_name(parse("cascade-code-n2-k2"), detail=False) == "cascade"
    assert policy_name(parse("cascade-sft-code-n5"), detail=False) == "cascade-sft"
    assert policy_name(parse("student-dpo"), detail=False) == "student-dpo"
    assert policy_name(teacher_spec("reference")) == policy_name(PolicySpec(kind="constant")) == "teacher"
    folder = tmp_path / "merged"
    folder.mkdir()
    (folder / "agentkd_student.json").write_text("{}")
    fine_tuned = parse_policy_name("cascade", TEACHER, str(folder))  # a folder `agentkd train` wrote
    assert fine_tuned.settings["student"]["kind"] == "student" and policy_name(fine_tuned) == "cascade-sft"


def test_a_spec_no_name_describes_is_refused_with_the_reason():
    odd = validate_policy_spec(PolicySpec(kind="cascade", settings={
        "student": student_spec(STUDENT, demos=False), "teacher": TEACHER}))
    with pytest.raises(PolicyNameError, match="no policy name describes a cascade of a 'student' student"):
        policy_name(odd)
    assert policy_name(odd, detail=False) == "cascade"


def test_evaluations_are_named_by_the_base_and_a_dpo_one_named_sft_before_keeps_its_name(tmp_path):
    dpo = parse("cascade-dpo")
    assert default_eval_name(dpo) == "cascade-dpo" and default_eval_name(dpo, tmp_path) == "cascade-dpo"
    assert default_eval_name(parse("cascade-n5")) == "cascade"
    layout = RunLayout(tmp_path)
    layout.eval_settings("cascade-sft").parent.mkdir(parents=True)
    layout.eval_settings("cascade-sft").write_text(json.dumps({"identity": {"policy": dpo.model_dump(mode="json")}}))
    assert default_eval_name(dpo, tmp_path) == "cascade-sft"  # recorded by an agentkd that named every student -sft
    assert default_eval_name(parse("cascade-dpo-n2"), tmp_path) == "cascade-dpo"  # another job: its own name
