"""SFT data from a tool-call episode (what `agentkd gateway` records) through Qwen2.5-Coder's own chat template: the
tool definitions, tool calls and tool results are rendered, and the loss falls on the assistant turns only (slow:
loads the Qwen tokenizer from the installed GGUF's materialised folder)."""

from __future__ import annotations

import pytest
from fake_openai import TOOLS

from agentkd.models.distribution.catalog import QWEN_05B, status
from agentkd.records import Step, Task, ToolCall, Trajectory
from agentkd.train.sft_data import student_conversation, tokenize_conversation

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not status(QWEN_05B).installed,
                       reason="needs the Qwen2.5-Coder-0.5B GGUF: agentkd models install qwen2.5-coder-0.5b"),
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from agentkd.models.hf.local import resolve_local_model

    return AutoTokenizer.from_pretrained(str(resolve_local_model("qwen2.5-coder-0.5b")))


def call(name: str, city: str, call_id: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": f'{{"city": "{city}"}}'}}


def tool_episode() -> Trajectory:
    messages = [
        {"role": "system", "content": "You answer with the tools."},
        {"role": "user", "content": "Weather and time in Oslo and Rome?"},
        {"role": "assistant", "content": "Checking Oslo first.", "tool_calls": [call("get_weather", "Oslo", "a")]},
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "assistant", "content": None,
         "tool_calls": [call("get_time", "Oslo", "b"), call("get_weather", "Rome", "c")]},
        {"role": "tool", "tool_call_id": "b", "content": "10:00"},
        {"role": "tool", "tool_call_id": "c", "content": "rain"},
        {"role": "assistant", "content": "Oslo: sunny, 10:00. Rome: rain."},
    ]
    steps = [Step(index=0, role="teacher", output="Checking Oslo first.",
                  tool_calls=[ToolCall(name="get_weather", arguments='{"city": "Oslo"}', id="a")]),
             Step(index=1, role="teacher", output="", tool_calls=[ToolCall(name="get_time", arguments="{}")]),
             Step(index=2, role="teacher", output="Oslo: sunny, 10:00. Rome: rain.")]
    return Trajectory(task=Task(id="ep", prompt=messages[1]["content"]), policy="gateway:m", messages=messages,
                      steps=steps, tools=TOOLS)


def test_the_loss_falls_on_the_assistant_turns_of_a_tool_conversation(tokenizer):
    traj = tool_episode()
    messages = student_conversation(None, traj)
    assert messages[4]["tool_calls"][1]["function"]["arguments"] == {"city": "Rome"}  # objects, as templates expect
    example = tokenize_conversation(tokenizer, messages, "ep", tools=traj.tools)
    ids, mask = example.input_ids, example.assistant_masks
    text = tokenizer.apply_chat_template(messages, tools=traj.tools, tokenize=False)
    assert tokenizer.decode(ids) == text and '"name": "get_weather"' in text.split("<|im_end|>")[0]  # tools shown
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    turns: list[list[tuple[int, int]]] = []
    for token, trained in zip(ids, mask):
        if token == start:
            turns.append([])
        turns[-1].append((token, trained))
    headers = [tokenizer.decode([t for t, _ in turn]).split("\n", 1)[0] for turn in turns]
    # the template renders each run of tool results as one user turn
    assert headers == ["<|im_start|>" + r for r in ("system", "user", "assistant", "user", "assistant", "user",
                                                    "assistant")]
    trained_turns = []
    for header, turn in zip(headers, turns):
        trained = tokenizer.decode([t for t, m in turn if m])
        if header.endswith("assistant"):
            assert not any(m for _, m in turn[:3])  # `<|im_start|>assistant\n` is shown, not trained
            assert trained.endswith("<|im_end|>\n") and tokenizer.decode([t for t, _ in turn[3:]]) == trained
            trained_turns.append(trained)
        else:
            assert trained == ""
    assert trained_turns[0].startswith("Checking Oslo first.\n<tool_call>") and '"Oslo"' in trained_turns[0]
    assert trained_turns[1].count("<tool_call>") == 2 and "get_time" in trained_turns[1]
    assert trained_turns[2] == "Oslo: sunny, 10:00. Rome: rain.<|im_end|>\n"
    assert "<tool_response>" not in "".join(trained_turns)


def test_a_gateway_run_trains_without_an_environment(tokenizer, tmp_path):
    from agentkd.run.folder import RunFolder
    from agentkd.train import TrainConfig
    from agentkd.train.job import TrainJob
    from agentkd.train.trainer import prepare_data

    folder = RunFolder(tmp_path)
    folder.start(identity={"command": "gateway", "teacher": "openai/gpt-4o-mini"}, details={})
    graded = tool_episode().model_copy(update={"score": 1.0, "success": True})
    folder.append(graded)
    folder.append(tool_episode().model_copy(update={"task": Task(id="later", prompt="p"), "graded": False}))
    folder.close()
    assert TrainJob(run=tmp_path).prepare() is None  # the episodes bring their own tools
    examples, report, too_long = prepare_data(None, list(RunFolder(tmp_path).iter_trajectories()), tokenizer,
                                              TrainConfig(), context=4096)
    assert [e.task_id for e in examples] == ["ep"] and examples[0].trained_tokens > 0 and too_long == 0
    assert report.dropped == {"ungraded (no outcome yet: send feedback for them)": 1}


def test_dpo_rows_of_tool_call_pairs_render_their_tools(tokenizer):
    import json

    from datasets import Dataset

    from agentkd.train import TrainingError
    from agentkd.train.dpo import dpo_rows
    from agentkd.train.preferences import PreferencePair

    episode = tool_episode()
    tool_pair = PreferencePair(id="t", task_id="ep", split="train", step_index=1, prompt=episode.messages[:4],
                               chosen='<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>',
                               rejected="It is noon.", source="deferral", provenance={"tools": episode.tools})
    codeact = PreferencePair(id="c", task_id="x", split="train", step_index=0,
                             prompt=[{"role": "user", "content": "q"}], chosen="a", rejected="b", source="deferral")
    (row,) = dpo_rows(None, [tool_pair])
    assert json.loads(row["tools"]) == episode.tools
    with pytest.raises(TrainingError, match="CodeAct pair"):
        dpo_rows(None, [codeact])
    from agentkd.env import load_environment

    mixed = Dataset.from_list(dpo_rows(load_environment("factqa"), [codeact, tool_pair]))  # one schema for both
    back = mixed[1]
    call = back["prompt"][2]["tool_calls"][0]["function"]
    assert call == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}  # JSON text kept as written
    text = tokenizer.apply_chat_template(back["prompt"] + back["chosen"], tools=json.loads(back["tools"]),
                                         tokenize=False)
    assert '"name": "get_weather"' in text.split("<|im_end|>")[0]  # the tool definitions in the system turn
    assert '{"city": "Oslo"}' in text and "null" not in text
