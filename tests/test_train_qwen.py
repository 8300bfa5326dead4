"""Qwen2.5-Coder students (slow; the GGUF installed): the materialised folder's chat template and stop tokens, the
assistant-only loss mask with the real Qwen tokenizer, bf16 autocast against fp32, and a tiny run end to end:
train the 0.5B, export it to GGUF, run it as the cascade's student through llama.cpp."""

import asyncio
import json

import pytest
from typer.testing import CliRunner

from agentkd import CodeActAgent, ReferencePolicy, Step, Trajectory, Vote
from agentkd.cli import app
from agentkd.collect import collect
from agentkd.evaluate import eval_folder
from agentkd.models.distribution.catalog import QWEN_05B, status
from agentkd.models.hf.local import resolve_local_model
from agentkd.run import RunFolder, RunLayout
from agentkd.train import TrainConfig, student_conversation, tokenize_conversation, train_student

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not status(QWEN_05B).installed,
                       reason="needs the Qwen2.5-Coder-0.5B GGUF: agentkd models install qwen2.5-coder-0.5b"),
]
QWEN = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_local_model(QWEN)))


@pytest.fixture(scope="module")
def conversation(factqa):
    traj = CodeActAgent(factqa, ReferencePolicy()).run(
        next(t for t in factqa.tasks("train") if t.metadata.get("kind") == "comparison"))
    return traj, student_conversation(factqa, traj)


def test_the_materialised_folder_keeps_qwens_template_and_stop_tokens(tokenizer):
    from transformers import GenerationConfig

    folder = resolve_local_model(QWEN)
    assert folder.name == "qwen2.5-coder-0.5b-instruct-hf" and resolve_local_model("Qwen2.5-Coder-0.5B-Instruct") == folder
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "qwen2" and "quantization_config" not in config  # trainable, not flagged quantized
    assert json.loads((folder / "agentkd_source.json").read_text())["alias"] == QWEN
    im_end, endoftext = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert GenerationConfig.from_pretrained(str(folder)).eos_token_id == [im_end, endoftext]
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n")


def test_the_loss_falls_only_on_the_assistant_turns(tokenizer, conversation):
    """Every trained token lies between an `<|im_start|>assistant\\n` and its `<|im_end|>` (that token included, so
    the student learns to stop); nothing of the system prompt, the task, the observations or the role headers."""
    traj, messages = conversation
    example = tokenize_conversation(tokenizer, messages)
    ids, mask = example.input_ids, example.assistant_masks
    assert len(traj.steps) >= 3 and len(ids) == len(tokenizer(tokenizer.apply_chat_template(
        messages, tokenize=False), add_special_tokens=False)["input_ids"])
    start, end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    turns = []  # (role, [(token, trained)]) per <|im_start|> ... <|im_end|> turn
    for token, trained in zip(ids, mask):
        if token == start:
            turns.append([])
        turns[-1].append((token, trained))
    assert [tokenizer.decode([t for t, _ in turn]).split("\n", 1)[0] for turn in turns] == [
        "<|im_start|>" + m["role"] for m in messages]
    for turn, message in zip(turns, messages):
        text = tokenizer.decode([t for t, m in turn if m])
        if message["role"] == "assistant":
            assert text == message["content"] + "<|im_end|>\n"
            header = tokenizer.decode([t for t, _ in turn[:3]])
            assert header == "<|im_start|>assistant\n" and not any(m for _, m in turn[:3])
            assert (end, 1) in turn
        else:
            assert text == ""
    assert tokenizer.decode([t for t, m in zip(ids, mask) if m]) == "".join(f"{s.output}<|im_end|>\n"
                                                                             for s in traj.steps)


def test_bf16_autocast_gives_the_fp32_loss_on_a_fixed_batch(tokenizer, conversation):
    import torch
    from transformers import AutoModelForCausalLM

    from agentkd.train.speed import batch_loss

    _traj, messages = conversation
    example = tokenize_conversation(tokenizer, messages[:3])  # system, task, first step: a short fixed batch
    model = AutoModelForCausalLM.from_pretrained(str(resolve_local_model(QWEN)), dtype=torch.float32).eval()
    fp32, bf16 = batch_loss(model, example, bf16=False), batch_loss(model, example, bf16=True)
    assert 0 < fp32 < 5 and fp32 != bf16  # autocast did run in bf16
    assert abs(bf16 - fp32) / fp32 < 0.015


@pytest.fixture(scope="module")
def qwen_run(factqa, tmp_path_factory):
    """A run of 4 reference episodes and a 0.5B student trained on it for two optimizer steps of one conversation
    each: enough to check the whole path, not to learn."""
    path = tmp_path_factory.mktemp("qwen_run")
    folder = RunFolder(path)
    folder.start({"command": "collect", "env": "factqa", "teacher": "reference", "split": "train"}, {})
    asyncio.run(collect(factqa, ReferencePolicy(), factqa.tasks("train", 4), folder, concurrency=2))
    config = TrainConfig(student=QWEN, lora_r=4, batch_size=1, max_steps=2, warmup_steps=0, logging_steps=1,
                         max_trajectories=2)
    return path, train_student(path, factqa, config)


def _qwen2_gguf(path) -> None:
    import gguf

    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.architecture"].contents() == "qwen2"
    assert "<|im_start|>assistant" in reader.fields["tokenizer.chat_template"].contents()
    assert len(reader.tensors) == 291  # 24 layers of 12 (q/k/v biases included), embeddings, norm, output


def test_a_trained_qwen_student_runs_through_llama_cpp_in_the_cascade(qwen_run):
    run, result = qwen_run
    layout = RunLayout(run)
    assert result.final_loss is not None and result.gguf == layout.student_gguf and result.gguf_error is None
    merged = json.loads((layout.student_merged / "config.json").read_text())
    assert merged["model_type"] == "qwen2"
    _qwen2_gguf(layout.student_gguf)

    result = CliRunner().invoke(app, ["eval", "--run", str(run), "--policy", "cascade", "--student", "trained",
                                      "--n", "1", "--max-steps", "1", "--samples", "2", "--max-tokens", "48",
                                      "--concurrency", "1"])
    assert result.exit_code == 0, result.output
    trajectory = json.loads(layout.eval_trajectories("cascade-sft").read_text().splitlines()[0])
    assert trajectory["policy"] == f"cascade:gguf/{layout.student_gguf.resolve()}+teacher:reference"
    step = trajectory["steps"][0]
    assert len(step["candidates"]) == 2 and step["usage"]["completion_tokens"] > 0


def test_the_preference_stage_trains_exports_and_runs_the_qwen_student(qwen_run, factqa, tmp_path):
    """DPO on the trained 0.5B (one optimizer step over one pair), exported to GGUF and evaluated through llama.cpp
    as `trained-dpo`. The pair comes from a scripted deferred cascade step on a train task (how pairs are drawn from
    real evaluations is tested in test_preferences.py)."""
    run, _ = qwen_run
    layout = RunLayout(run)
    task = factqa.tasks("train", 5)[-1]
    teacher_step = CodeActAgent(factqa, ReferencePolicy()).run(task).steps[0]
    student_text = 'Thought: I will answer now.\n```python\nfinal_answer("nobody")\n```'
    deferred = Step(index=0, role="teacher", output=teacher_step.output, action=teacher_step.action,
                    observation=teacher_step.observation, candidates=[student_text, student_text],
                    vote=Vote(mode="code", accepted=False, winner_index=0, winner_count=2, needed=3, group_sizes=[2],
                              unusable=0))
    messages = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": task.prompt},
                {"role": "assistant", "content": teacher_step.output},
                {"role": "user", "content": f"Observation:\n{teacher_step.observation}"}]
    folder = eval_folder(run, "cascade-dpo-probe")
    folder.start({"policy": "cascade-dpo-probe"}, {})
    folder.append(Trajectory(task=task, policy="cascade", steps=[deferred], success=False, messages=messages))
    folder.close()
    layout.eval_report("cascade-dpo-probe").write_text("{}")
    config = tmp_path / "dpo.yaml"
    config.write_text(f"student: {QWEN}\nlora_r: 4\nmax_steps: 1\ndpo: {{batch_size: 1}}\n")

    result = CliRunner().invoke(app, ["train", "--run", str(run), "--stage", "dpo", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "preference pairs:" in result.output and ", 1 kept" in result.output  # the scripted pair (the cascade
    # evaluation above, if it ran first, deferred on test tasks: left out)
    log = [json.loads(x) for x in layout.dpo_train_log.read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1]
    assert json.loads((layout.dpo_merged / "config.json").read_text())["model_type"] == "qwen2"
    _qwen2_gguf(layout.dpo_gguf)

    result = CliRunner().invoke(app, ["eval", "--run", str(run), "--policy", "student", "--student", "trained-dpo",
                                      "--n", "1", "--max-steps", "1", "--max-tokens", "32", "--concurrency", "1"])
    assert result.exit_code == 0, result.output
    trajectory = json.loads(layout.eval_trajectories("student-dpo").read_text().splitlines()[0])
    assert trajectory["policy"] == f"sft:gguf/{layout.dpo_gguf.resolve()}"  # a fine-tuned student acting alone
    assert trajectory["steps"][0]["usage"]["completion_tokens"] > 0
