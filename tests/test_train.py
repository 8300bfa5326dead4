"""`agentkd train` with the real SmolLM2-135M: the loss mask, padding-free batches, training, resume, the CLI."""

import asyncio
import json

import pytest
from typer.testing import CliRunner

from agentkd import CodeActAgent, ModelClient, ReferencePolicy
from agentkd.cli import app
from agentkd.collect import collect
from agentkd.models.hf.local import resolve_local_model
from agentkd.policies.self_consistent import SelfConsistentPolicy
from agentkd.policies.student import StudentPolicy
from agentkd.run import RunFolder
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
    assert traj.task.prompt in untrained and "Observation:" in untrained and "final_answer(\"" not in untrained
    assert len(example.input_ids) == len(tokenizer(tokenizer.apply_chat_template(messages, tokenize=False),
                                                   add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("micro_batch", [1, 2])
def test_a_micro_batch_gives_each_conversation_the_logits_it_has_alone(run, factqa, tokenizer, tmp_path, micro_batch):
    """Conversations batched together must not see each other (they did, when concatenated into one
    padding-free row under sdpa: that is why agentkd pads micro-batches of several conversations)."""
    import torch

    from agentkd.train import TrainConfig
    from agentkd.train.trainer import build_trainer

    examples = [tokenize_conversation(tokenizer, student_conversation(factqa, t))
                for t in list(RunFolder(run).iter_trajectories())[:2]]
    config = TrainConfig(batch_size=2, micro_batch_size=micro_batch)
    trainer = build_trainer(resolve_local_model("smollm2-135m"), examples, config, tmp_path)
    model = trainer.model.eval()
    batches = [trainer.data_collator([{"input_ids": e.input_ids}]) for e in examples] if micro_batch == 1 else \
        [trainer.data_collator([{"input_ids": e.input_ids} for e in examples])]
    with torch.no_grad():
        got = []
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
            logits = model(**inputs).logits
            got += [logits[row, : len(e.input_ids)] for row, e in zip(range(logits.shape[0]), examples[len(got):])]
        assert len(got) == 2  # one row per conversation
        for e, logits in zip(examples, got):
            alone = model(input_ids=torch.tensor([e.input_ids])).logits[0]
            assert torch.allclose(logits, alone, atol=1e-3)


def test_train_interrupt_resume_and_use_the_student(run, factqa):
    config = TrainConfig(epochs=1, lr=1e-3, lora_r=8, batch_size=2, save_steps=1, warmup_steps=0, logging_steps=1,
                         max_trajectories=6)

    class Interrupt(Exception):
        pass

    def stop_in_second_step(step, total, logs):
        assert total == 3  # 6 conversations / batch 2
        if step == 2:  # checkpoint-1 is on disk, step 2's is not
            raise Interrupt

    with pytest.raises(Interrupt):
        train_student(run, factqa, config, on_progress=stop_in_second_step)
    student = run / "student"
    assert (student / "checkpoints" / "checkpoint-1").is_dir() and not (student / "merged").exists()
    with pytest.raises(TrainingError, match="--resume"):
        train_student(run, factqa, config)  # would delete the interrupted training: refused

    steps_seen = []
    result = train_student(run, factqa, config, resume=True, on_progress=lambda s, t, logs: steps_seen.append(s))
    assert steps_seen and min(steps_seen) == 2 and max(steps_seen) == 3  # continued, did not start over
    assert result.examples == 6 and result.train_tokens > 0 and result.final_loss is not None
    for part in ("adapter/adapter_config.json", "merged/config.json", "merged/agentkd_student.json", "config.yaml",
                 "train_log.jsonl", "data.json"):
        assert (student / part).is_file(), part
    assert (run / "failed.jsonl").is_file()  # outside student/: replacing the student keeps failed episodes
    log = [json.loads(line) for line in (student / "train_log.jsonl").read_text().splitlines()]
    assert any("loss" in entry for entry in log) and log[-1]["train_tokens"] == result.train_tokens
    assert json.loads((student / "data.json").read_text())["examples"] == 6

    # The merged student is a policy: plain, and with self-consistent action generation.
    client = ModelClient(f"hf/{result.merged_dir}", max_tokens=48)
    plain = StudentPolicy(client, student_prompt=True)
    traj = CodeActAgent(factqa, SelfConsistentPolicy(plain, samples=2), max_steps=1).run(factqa.tasks("test")[0])
    step = traj.steps[0]
    assert traj.status in ("finished", "step_limit") and len(step.candidates) == 2 and step.vote.mode == "result"
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


def test_a_long_conversation_is_trained_as_windows_masked_on_their_own_steps(factqa):
    from transformers import AutoTokenizer

    from agentkd.models.hf.local import resolve_local_model
    from agentkd.train.sft_data import build_examples, student_conversation, windows

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_local_model("smollm2-135m")))
    traj = CodeActAgent(factqa, ReferencePolicy()).run(
        next(t for t in factqa.tasks("train") if t.metadata.get("kind") == "comparison"))
    messages = student_conversation(factqa, traj)
    whole = tokenize_conversation(tokenizer, messages)
    replies = [m["content"] for m in messages if m["role"] == "assistant"]
    assert len(replies) >= 3
    limit = len(whole.input_ids) * 2 // 3
    parts = windows(tokenizer, messages, limit, context=1)
    assert parts and len(parts) >= 2 and all(len(p.input_ids) <= limit for p in parts)
    trained = []
    for part in parts:
        text = tokenizer.decode([t for t, m in zip(part.input_ids, part.assistant_masks) if m])
        trained += [r for r in replies if r in text]
        assert messages[1]["content"] in tokenizer.decode(part.input_ids)  # every window starts from the task
    assert trained == replies  # each step trained exactly once, in order, and nothing else
    examples, too_long, windowed = build_examples(factqa, [traj], tokenizer, limit, context=1)
    assert windowed == 1 and not too_long and len(examples) == len(parts)
    assert build_examples(factqa, [traj], tokenizer, 40, context=1)[1] == [traj]  # no step fits: dropped, named
