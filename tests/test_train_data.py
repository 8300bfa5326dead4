"""Trajectory filters, training configs and self-consistent action generation (fast, no model)."""

import pytest

from agentkd import CodeActAgent, Environment, ReferencePolicy, tool
from agentkd.evaluate import summarize
from agentkd.models.client import Completion
from agentkd.policies.self_consistent import SelfConsistentPolicy
from agentkd.records import Step, Task, Trajectory, Usage
from agentkd.train import FilterConfig, TrainConfigError, filter_trajectories, resolve_config


def traj(task_id="t1", prompt="q?", actions=("print(1)",), success=True, score=None, status="finished", parse_errors=0):
    steps = [Step(index=i, role="reference", output=f"```python\n{a}\n```", action=a) for i, a in enumerate(actions)]
    return Trajectory(task=Task(id=task_id, prompt=prompt), policy="reference", steps=steps, success=success,
                      score=score if score is not None else float(success), status=status, parse_errors=parse_errors,
                      messages=[{"role": "system", "content": "s"}, {"role": "user", "content": prompt}])


def test_filters_keep_successes_set_failures_apart_and_say_why():
    report = filter_trajectories([
        traj("a"),
        traj("b", prompt="other?"),
        traj("a", actions=("print( 1 )  # same code",)),  # duplicate of the first once normalised
        traj("c", success=False),
        traj("d", status="step_limit", success=False),
        traj("e", parse_errors=1),
        traj("f", status="error", success=False),
    ])
    assert [t.task.id for t in report.kept] == ["a", "b"]
    assert [t.task.id for t in report.failed] == ["c", "d"]
    assert report.dropped == {"duplicates": 1, "below the success threshold (set apart as failed)": 1,
                              "step-limit hits (set apart as failed)": 1, "parse failures": 1, "episode errors": 1}
    assert report.seen == 7 and "kept 2" in report.summary() and "1 duplicates" in report.summary()


def test_filter_threshold_and_switches():
    half = traj("h", success=False, score=0.6)
    assert filter_trajectories([half], FilterConfig(min_score=0.5)).kept == [half]
    assert filter_trajectories([half]).failed == [half]  # default: the environment's own verdict
    twice = [traj("a"), traj("a")]
    assert len(filter_trajectories(twice, FilterConfig(dedupe=False)).kept) == 2
    assert len(filter_trajectories([traj("e", parse_errors=2)], FilterConfig(drop_parse_errors=False)).kept) == 1


def test_config_file_then_options(tmp_path):
    file = tmp_path / "train.yaml"
    file.write_text("epochs: 3\nlr: 0.0005\nfilters:\n  max_tokens: 512\n")
    config = resolve_config(file, lr=0.002, lora_r=None)
    assert (config.epochs, config.lr, config.lora_r, config.filters.max_tokens) == (3, 0.002, 32, 512)
    assert config.alpha == 64 and config.gradient_accumulation == 8  # batch 8 of micro-batches of 1


@pytest.mark.parametrize("content, problem", [
    ("epochs: -1\n", "epochs"),
    ("learning_rate: 0.1\n", "learning_rate"),  # unknown key: a typo must not be ignored
    ("batch_size: 6\nmicro_batch_size: 4\n", "multiple of micro_batch_size"),
    ("- a list\n", "mapping"),
    ("epochs: [\n", "not valid YAML"),
])
def test_bad_config_files_are_named(tmp_path, content, problem):
    file = tmp_path / "bad.yaml"
    file.write_text(content)
    with pytest.raises(TrainConfigError, match=problem):
        resolve_config(file)
    with pytest.raises(TrainConfigError, match="does not exist"):
        resolve_config(tmp_path / "missing.yaml")


def test_bf16_is_chosen_where_the_cpu_has_native_bf16_instructions():
    from agentkd.train.trainer import cpu_bf16_flags, use_bf16

    zen4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\nbugs\t\t: sysret_ss_attrs\n"
    sapphire = "flags\t\t: avx512f amx_bf16 amx_tile amx_int8 avx512_bf16\n"
    assert cpu_bf16_flags(zen4) == {"avx512_bf16"} and cpu_bf16_flags(sapphire) == {"amx_bf16", "avx512_bf16"}
    assert cpu_bf16_flags("flags\t\t: fpu avx2 avx512f\nmodel name\t: amx_bf16 in a name\n") == set()
    assert use_bf16("bf16") and not use_bf16("fp32")


@pytest.mark.parametrize("name, folder", [("smollm2-135m", "smollm2-135m-instruct"),
                                          ("Qwen2.5-Coder-0.5B", "qwen2.5-coder-0.5b-instruct-hf"),
                                          ("qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-1.5b-instruct-hf")])
def test_trainable_aliases_name_their_gguf_and_folder(name, folder, tmp_path, monkeypatch):
    from agentkd.models.distribution.catalog import CATALOG
    from agentkd.models.hf.materialize import materialized_dir, trainable

    monkeypatch.setenv("AGENTKD_CACHE", str(tmp_path))
    model = trainable(name)
    assert model is not None and model.gguf_alias in CATALOG
    assert materialized_dir(model) == tmp_path / "models" / folder
    assert trainable("gpt2") is None and trainable("qwen2.5-coder-7b") is None


def test_an_unknown_student_names_the_trainable_aliases(tmp_path):
    from agentkd.errors import ModelError
    from agentkd.models.hf.local import resolve_local_model

    with pytest.raises(ModelError, match="qwen2.5-coder-0.5b, qwen2.5-coder-1.5b"):
        resolve_local_model(str(tmp_path / "nothing"))


# self-consistent action generation ------------------------------------------------------------

@tool
def transfer(amount: int, state=None) -> int:
    """Move `amount` into the account; returns the new balance."""
    state["balance"] += amount
    return state["balance"]


def solve(task):
    yield "Thought: pay.\n```python\nfinal_answer(transfer(5))\n```"


BANK = Environment(name="bank", tasks=[{"id": "a", "prompt": "add 5", "answer": 5}], tools=[transfer],
                   grader=lambda state: float(state["balance"] == 5), setup_state=lambda task: {"balance": 0},
                   max_steps=3, reference_solver=solve)


class ScriptedStudent:
    """Stands in for a sampled student (a test double; the real fine-tuned SmolLM2 runs in test_train.py)."""

    def __init__(self, per_step):
        self.per_step, self.role = per_step, "student"
        self.client = type("C", (), {"model": "scripted"})()

    async def sample(self, ctx, n, temperature):
        texts = self.per_step[min(ctx.step_index, len(self.per_step) - 1)][:n]
        return Completion(texts=texts, usage=Usage(prompt_tokens=3 * n, completion_tokens=2 * n, calls=1),
                          latency_s=0.01, model="scripted")


def code(src):
    return f"Thought: t.\n```python\n{src}\n```"


def test_self_consistency_votes_on_final_answer_values_and_drops_errors():
    student = ScriptedStudent([[
        code("final_answer(transfer(50))"),   # a different value
        code("1 / 0"),                        # errors: dropped
        code("final_answer(transfer(5))"),
        "no code at all",                     # unparseable: dropped
        code("x = transfer(5)\nfinal_answer(x)"),  # different code, same final value as the third
    ]])
    traj = CodeActAgent(BANK, SelfConsistentPolicy(student, samples=5)).run(BANK.tasks("train")[0])
    step = traj.steps[0]
    assert step.vote.group_sizes == [2, 1] and step.vote.unusable == 2
    assert step.output == code("final_answer(transfer(5))") and len(step.candidates) == 5
    # Five trials called `transfer` on copies of the state; only the chosen step touched the episode.
    assert traj.final_answer == 5 and traj.success and step.role == "student"
    report = summarize([traj], policy="sc", split="train")
    assert report.deferral_rate is None and report.student_share_of_steps == 1.0  # no teacher could take over


def test_self_consistency_with_only_failing_candidates_takes_the_first():
    student = ScriptedStudent([[code("1 / 0"), code("undefined_name")], [code("final_answer(transfer(5))")] * 2])
    traj = CodeActAgent(BANK, SelfConsistentPolicy(student, samples=2)).run(BANK.tasks("train")[0])
    assert traj.steps[0].output == code("1 / 0") and "ZeroDivisionError" in traj.steps[0].observation
    assert traj.steps[0].vote.winner_index is None and traj.success
    with pytest.raises(ValueError):
        SelfConsistentPolicy(student, samples=0)


def test_reference_teacher_unchanged_on_the_stateful_env():
    assert CodeActAgent(BANK, ReferencePolicy()).run(BANK.tasks("train")[0]).success


def test_the_filter_summary_adds_up_and_dedupe_is_per_task_unless_asked():
    same_actions = [traj("a"), traj("b"), traj("a"), traj("c", success=False), traj("d", status="error")]
    report = filter_trajectories(same_actions)
    assert [t.task.id for t in report.kept] == ["a", "b"]  # b: another task with the same actions is kept
    summary = report.summary()
    assert summary.startswith("5 trajectories = kept 2 + set apart 1 failed (1 below the success threshold) + "
                              "dropped 2 (")
    assert "1 duplicates" in summary and "1 episode errors" in summary
    assert [t.task.id for t in filter_trajectories(same_actions, FilterConfig(dedupe="actions")).kept] == ["a"]
    prompts = [traj("a", prompt="same?"), traj("b", prompt="same?")]
    assert len(filter_trajectories(prompts, FilterConfig(dedupe="prompt")).kept) == 1
    assert len(filter_trajectories(prompts).kept) == 2
