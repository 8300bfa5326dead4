"""The preference stage: pairs from deferrals and divergences (scripted runs), DPO on a real tiny model."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from agentkd import RunFolder, RunLayout, Step, Task, Trajectory, Vote
from agentkd.cli import app
from agentkd.evaluate import eval_folder
from agentkd.policies.registry import BuildContext
from agentkd.run.layout import is_trained_student
from agentkd.train.preferences import build_preferences, deferral_pairs, divergence_pairs


def block(code: str, thought: str = "go") -> str:
    return f"Thought: {thought}\n```python\n{code}\n```"


def code_vote(samples: int, accepted: bool) -> Vote:
    """A unanimity vote over `samples` candidates: all agreed, or every one differed."""
    return Vote(mode="code", accepted=accepted, winner_index=0, winner_count=samples if accepted else 1,
                needed=samples, group_sizes=[samples] if accepted else [1] * samples, unusable=0)


def episode(task_id, steps, success, split="train", policy="cascade"):
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": f"task {task_id}"}]
    records = []
    for i, (role, code, candidates, accepted) in enumerate(steps):
        vote = None if candidates is None else code_vote(len(candidates), accepted)
        records.append(Step(index=i, role=role, output=block(code), action=code, observation=f"obs {i}",
                            candidates=candidates, vote=vote))
        messages += [{"role": "assistant", "content": block(code)}, {"role": "user", "content": f"Observation:\nobs {i}"}]
    return Trajectory(task=Task(id=task_id, prompt=f"task {task_id}", split=split), policy=policy, steps=records,
                      success=success, messages=messages)


def test_deferred_steps_give_the_teacher_step_against_each_disagreeing_candidate():
    traj = episode("a", [
        ("student", "x = 1", [block("x = 1"), block("x=1  # same")], True),
        ("teacher", "print(search('b'))", [block("print(search('a'))"), block("print(search('b'))"), "no code"], False),
    ], success=True)
    pairs = deferral_pairs([traj], "cascade-sft")
    assert [(p.step_index, p.rejected) for p in pairs] == [(1, block("print(search('a'))")), (1, "no code")]
    pair = pairs[0]
    assert pair.chosen == block("print(search('b'))") and pair.source == "deferral"
    assert [m["content"] for m in pair.prompt] == ["sys", "task a", block("x = 1"), "Observation:\nobs 0"]
    assert pair.provenance["eval"] == "cascade-sft" and pair.provenance["vote"]["accepted"] is False


def test_a_failed_student_episode_diverges_at_its_first_different_step():
    teacher = episode("a", [("teacher", "x = 1", None, None), ("teacher", "final_answer(x)", None, None)], True)
    student = episode("a", [("student", "x = 1", None, None), ("student", "final_answer(2)", None, None)], False)
    pairs = divergence_pairs([student], {"a": teacher}, "student-sft")
    assert len(pairs) == 1 and pairs[0].step_index == 1
    assert pairs[0].chosen == block("final_answer(x)") and pairs[0].rejected == block("final_answer(2)")
    assert divergence_pairs([student], {}, "student-sft") == []  # no teacher trajectory of that task: no pair


def write_eval(run, name, trajectories):
    folder = eval_folder(run, name)
    folder.start({"policy": name}, {})
    for t in trajectories:
        folder.append(t)
    folder.close()
    RunLayout(run).eval_report(name).write_text("{}")


def test_pairs_of_a_run_are_deduplicated_and_test_tasks_left_out(tmp_path):
    RunFolder(tmp_path).start({"command": "collect", "env": "factqa", "teacher": "reference", "split": "train"}, {})
    deferred = [("teacher", "y = 2", [block("y = 3")], False)]
    write_eval(tmp_path, "cascade-sft", [episode("a", deferred, True), episode("a", deferred, True),
                                         episode("t", deferred, True, split="test")])
    pairs, counts = build_preferences(tmp_path)
    assert counts == {"found": 3, "duplicates": 1, "test split left out": 1, "kept": 1}
    assert pairs[0].task_id == "a"
    assert len(build_preferences(tmp_path, include_test=True)[0]) == 2


@pytest.mark.slow
def test_dpo_on_a_tiny_real_model_lowers_its_loss(tmp_path, factqa):
    from agentkd.models.hf.local import resolve_local_model

    run = tmp_path / "r"
    RunFolder(run).start({"command": "collect", "env": "factqa", "teacher": "reference", "split": "train"}, {})
    layout = RunLayout(run)
    shutil.copytree(resolve_local_model("smollm2-135m"), layout.student_merged)  # stands in for an SFT student
    (layout.student_merged / "agentkd_student.json").write_text("{}")
    tasks = factqa.tasks("train", 2)
    episodes = [episode(t.id, [("teacher", f'print(search("{t.prompt[:20]}"))', [block("print(1)")], False)], True)
                for t in tasks]
    write_eval(run, "cascade-sft", episodes)
    config = tmp_path / "dpo.yaml"
    config.write_text("lora_r: 8\ndpo: {epochs: 3, lr: 0.002, batch_size: 1, beta: 0.5}\n")
    result = CliRunner().invoke(app, ["train", "--run", str(run), "--stage", "dpo", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "preference pairs: 2 found" in result.output
    log = [json.loads(x) for x in (layout.dpo_dir / "train_log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in log if "loss" in e]
    assert len(losses) >= 4 and losses[-1] < losses[0]
    assert (layout.dpo_merged / "config.json").is_file() and layout.preferences.is_file()
    # exported for llama.cpp like the SFT student, and `trained-dpo` resolves to that file with the student prompt
    assert layout.dpo_gguf.is_file() and f"llama.cpp: {layout.dpo_gguf}" in result.output.replace("\n", "")
    resolved = BuildContext(run=layout).model("trained-dpo")
    assert resolved == f"gguf/{layout.dpo_gguf.resolve()}" and is_trained_student(resolved)
    again = CliRunner().invoke(app, ["train", "--run", str(run), "--stage", "dpo"])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_dpo_scores_only_the_assistant_step_of_each_pair(tmp_path, factqa):
    """TRL tokenises a row into prompt and completion ids: the whole history (system prompt, task, earlier steps and
    observations) must land in the prompt, so the loss sees the chosen / rejected step and nothing else."""
    from agentkd.models.hf.local import resolve_local_model
    from agentkd.train.config import TrainConfig
    from agentkd.train.dpo import build_dpo_trainer, dpo_rows
    from agentkd.train.preferences import PreferencePair

    history = [{"role": "system", "content": "sys"}, {"role": "user", "content": "Who wrote Dune?"},
               {"role": "assistant", "content": block('print(search("Dune"))', "look it up")},
               {"role": "user", "content": "Observation:\nDune is a novel by Frank Herbert."}]
    pair = PreferencePair(id="p", task_id="train-00001", split="train", step_index=1, prompt=history,
                          chosen=block('final_answer("Frank Herbert")', "the article says"),
                          rejected=block('print(search("Dune"))', "search again"), source="divergence")
    trainer = build_dpo_trainer(resolve_local_model("smollm2-135m"), dpo_rows(factqa, [pair]), TrainConfig(),
                                tmp_path / "checkpoints")
    row = trainer.train_dataset[0]
    decode = trainer.processing_class.decode
    prompt, chosen, rejected = decode(row["prompt_ids"]), decode(row["chosen_ids"]), decode(row["rejected_ids"])
    assert "Who wrote Dune?" in prompt and "Frank Herbert." in prompt and 'search("Dune")' in prompt
    assert 'final_answer("Frank Herbert")' in chosen and "Who wrote" not in chosen and "Observation" not in chosen
    assert 'search("Dune")' in rejected and "Observation" not in rejected and "the article says" not in rejected
    batch = trainer.data_collator([row])
    scored = batch["input_ids"][0][batch["completion_mask"][0].bool()].tolist()
    assert scored == list(row["chosen_ids"])  # the chosen sequence's loss mask covers its completion exactly
