"""`agentkd train` with the real SmolLM2-135M: the loss mask, padding-free batches, training, resume, the CLI."""

import asyncio
import json

import pytest
from typer.testing import CliRunner

from agentkd import CodeActAgent, ModelClient, ReferencePolicy
from agentkd.cli import app
from agentkd.collect import RunFolder, collect
from agentkd.models.local_hf import resolve_local_model
from agentkd.policies.icd import StudentPolicy
from agentkd.policies.self_consistent import SelfConsistentPolicy
from agentkd.train import TrainConfig, TrainingError, student_conversation, tokenize_conversation, train_student

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_local_model("smollm2-135m")))


@pytest.fixture(scope="module")
def run(factqa, tmp_path_factory):
    path = tmp_path_factory.mktemp("train_run")
    folder = RunFolder(path)
    folder.start({"command": "collect", "env": "factqa", "teacher": "reference", "split": "train"}, {})
    asyncio.run(collect(factqa, ReferencePolicy(), factqa.tasks("train", 12), folder, concurrency=4))
    return path


def test_label_mask_covers_exactly_the_assistant_turns(factqa, run, tokenizer):
    traj = next(RunFolder(run).iter_trajectories())
    messages = student_conversation(factqa, traj)
    assert messages[0]["content"].startswith("Solve the task in steps") and len(messages[0]["content"]) < 400
    example = tokenize_conversation(tokenizer, messages)
    trained = [i for i, m in zip(example.input_ids, example.assistant_masks) if m]
    ignored = [i for i, m in zip(example.input_ids, example.assistant_masks) if not m]
    # Decoding the trained tokens gives back every assistant turn, each closed by the end-of-turn token, and nothing else.
    expected = "".join(f"{s.output}<|im_end|>\n" for s in traj.steps)
    assert tokenizer.decode(trained) == expected
    untrained = tokenizer.decode(ignored)
    assert traj.task.prompt in untrained and "Observation:" in untrained and "Thought:" not in untrained
    assert len(example.input_ids) == len(tokenizer(tokenizer.apply_chat_template(messages, tokenize=False),
                                                   add_special_tokens=False)["input_ids"])


def test_padding_free_batches_give_the_same_loss_as_separate_sequences(run, factqa, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(str(resolve_local_model("smollm2-135m")), attn_implementation="sdpa")
    trajs = list(RunFolder(run).iter_trajectories())[:2]
    rows = []
    for t in trajs:
        e = tokenize_conversation(tokenizer, student_conversation(factqa, t))
        rows.append({"input_ids": e.input_ids, "labels": [i if m else -100 for i, m in zip(e.input_ids, e.assistant_masks)]})
    packed = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(rows)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
        start = 0
        for row in rows:
            alone = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
            n = len(row["input_ids"])
            # Each conversation sees only itself: its logits match those of the conversation run alone.
            assert torch.allclose(logits[start:start + n], alone, atol=1e-3)
            start += n


def test_train_interrupt_resume_and_use_the_student(run, factqa):
    config = TrainConfig(epochs=1, lr=1e-3, lora_r=8, batch_size=4, micro_batch_size=2, save_steps=1, warmup_steps=0,
                         logging_steps=1)

    class Interrupt(Exception):
        pass

    def stop_after_first_step(step, total, logs):
        assert total == 3  # 12 conversations / batch 4
        if step == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_student(run, factqa, config, on_progress=stop_after_first_step)
    student = run / "student"
    assert (student / "checkpoints" / "checkpoint-1").is_dir() and not (student / "merged").exists()
    with pytest.raises(TrainingError, match="--resume"):
        train_student(run, factqa, config)  # would delete the interrupted training: refused

    steps_seen = []
    result = train_student(run, factqa, config, resume=True, on_progress=lambda s, t, logs: steps_seen.append(s))
    assert steps_seen and min(steps_seen) == 2 and max(steps_seen) == 3  # continued, did not start over
    assert result.examples == 12 and result.train_tokens > 0 and result.final_loss is not None
    for part in ("adapter/adapter_config.json", "merged/config.json", "merged/agentkd_student.json", "config.yaml",
                 "train_log.jsonl", "data.json", "failed.jsonl"):
        assert (student / part).is_file(), part
    log = [json.loads(line) for line in (student / "train_log.jsonl").read_text().splitlines()]
    assert any("loss" in entry for entry in log) and log[-1]["train_tokens"] == result.train_tokens
    assert json.loads((student / "data.json").read_text())["examples"] == 12

    # The merged student is a policy: plain, and with self-consistent action generation.
    client = ModelClient(f"hf/{result.merged_dir}", max_tokens=48)
    plain = StudentPolicy(client, student_prompt=True)
    traj = CodeActAgent(factqa, SelfConsistentPolicy(plain, n=2), max_steps=1).run(factqa.tasks("test")[0])
    step = traj.steps[0]
    assert traj.status in ("finished", "step_limit") and len(step.candidates) == 2 and step.vote["mode"] == "result"
    assert step.usage.completion_tokens > 0 and step.role == "student"


def test_cli_train_refuses_bad_input(run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--run", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "run.json" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: zero\n")
    result = runner.invoke(app, ["train", "--run", str(run), "--config", str(bad)])
    assert result.exit_code == 1 and "epochs" in result.output
    empty = tmp_path / "empty"
    folder = RunFolder(empty)
    folder.start({"command": "collect", "env": "factqa", "teacher": "reference", "split": "train"}, {})
    result = runner.invoke(app, ["train", "--run", str(empty)])
    assert result.exit_code == 1 and "no trajectory" in result.output and not (empty / "student").exists()
    result = runner.invoke(app, ["eval", "--run", str(empty), "--policy", "student", "--student", "trained"])
    assert result.exit_code == 1 and "agentkd train" in result.output
