"""tools/bench_icd.py: the policy names of --policies and the evaluation names they are stored under."""

import pytest
from bench_icd import eval_name, policy_spec

from agentkd.policies.registry import teacher_spec

TEACHER = teacher_spec("hosted_vllm/qwen2.5-coder-1.5b")
STUDENT = "gguf/qwen2.5-coder-0.5b"


def spec(name: str) -> dict:
    return policy_spec(name, TEACHER, STUDENT, k=4, max_tokens=256).model_dump(mode="json")


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
    with pytest.raises(SystemExit, match="unknown policy 'cascade-vote'"):
        spec("cascade-vote")


def test_a_dev_slice_gets_a_file_name_of_its_own():
    assert eval_name("icd-k2", "train[900:910]") == "icd-k2@train_900-910"
    assert eval_name("teacher", "test") == "teacher@test"
