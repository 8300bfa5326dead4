"""Tool-call actions as records (schema 4, older lines still read), their agreement, episode revisions in a run
folder, how the gateway's episode book groups exchanges (in process, no server), and the filters on ungraded
episodes."""

from __future__ import annotations

import json

import pytest

from agentkd import SCHEMA_VERSION, RunFolder, Step, Task, Trajectory
from agentkd.errors import RunFolderError
from agentkd.evaluate.prices import Price
from agentkd.gateway import Gateway, GatewaySettings
from agentkd.gateway.episodes import EpisodeBook
from agentkd.records import ToolCall, Usage
from agentkd.tool_calls import canonical_arguments, normalize_tool_calls, same_tool_calls, tool_calls_of
from agentkd.train.filters import FilterConfig, filter_trajectories

PRICE = Price(prompt=3.0, completion=15.0, cached_prompt=0.3)


def call(name: str, arguments: str, call_id: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_tool_calls_agree_by_name_and_canonical_arguments_in_any_order():
    a = [call("get_weather", '{"city": "Oslo", "unit": "C"}', "1"), call("get_time", '{"city":"Oslo"}', "2")]
    b = [call("get_time", '{ "city" : "Oslo" }', "x"), call("get_weather", '{"unit":"C","city":"Oslo"}', "y")]
    assert same_tool_calls(a, b)
    assert not same_tool_calls(a, [call("get_weather", '{"city": "Oslo", "unit": "F"}', "1"), a[1]])
    assert not same_tool_calls(a, a[:1])
    assert normalize_tool_calls(a) == (("get_time", '{"city":"Oslo"}'), ("get_weather", '{"city":"Oslo","unit":"C"}'))
    assert canonical_arguments("not json ") == "not json" and canonical_arguments("") == "{}"
    typed = tool_calls_of({"role": "assistant", "tool_calls": a})
    assert typed == [ToolCall(name="get_weather", arguments='{"city": "Oslo", "unit": "C"}', id="1"),
                     ToolCall(name="get_time", arguments='{"city":"Oslo"}', id="2")]
    assert same_tool_calls(typed, b) and typed[0].parsed_arguments() == {"city": "Oslo", "unit": "C"}


def test_a_tool_call_step_round_trips_and_codeact_lines_are_written_as_before():
    step = Step(index=0, role="teacher", output="", tool_calls=[ToolCall(name="f", arguments='{"x": 1}', id="c1")])
    traj = Trajectory(task=Task(id="t", prompt="p"), policy="gateway:m", steps=[step], graded=False, revision=2,
                      tools=[{"type": "function", "function": {"name": "f"}}])
    again = Trajectory.model_validate_json(traj.model_dump_json())
    assert again == traj and again.schema_version == SCHEMA_VERSION >= 4
    assert again.steps[0].action_kind == "tool_calls" and again.steps[0].tool_calls[0].name == "f"
    codeact = Trajectory(task=Task(id="t", prompt="p"), policy="reference",
                         steps=[Step(index=0, role="teacher", output="```python\nx=1\n```", action="x=1")])
    data = json.loads(codeact.model_dump_json())
    assert not {"tools", "graded", "revision"} & set(data) and "tool_calls" not in data["steps"][0]
    assert codeact.steps[0].action_kind == "code"


def test_a_version_3_line_still_reads():
    line = json.dumps({"schema_version": 3, "task": {"id": "a", "prompt": "p"}, "policy": "reference",
                       "messages": [{"role": "user", "content": "p"}],
                       "steps": [{"index": 0, "role": "teacher", "output": "o", "action": "print(1)",
                                  "vote": None, "usage": {"prompt_tokens": 3}}],
                       "score": 1.0, "success": True})
    old = Trajectory.model_validate_json(line)
    assert old.schema_version == 3 and old.graded and old.revision == 0 and old.tools is None
    assert old.steps[0].tool_calls is None and old.steps[0].action_kind == "code"


def test_a_later_revision_replaces_an_episode_and_other_lines_stay(tmp_path):
    folder = RunFolder(tmp_path)
    first = Trajectory(task=Task(id="e1", prompt="p"), policy="gateway:m", graded=False)
    folder.append(first)
    folder.append(Trajectory(task=Task(id="c1", prompt="p"), policy="reference"))
    folder.append(first.model_copy(update={"revision": 1, "graded": True, "score": 1.0}))
    folder.append(Trajectory(task=Task(id="c1", prompt="q"), policy="reference", sample_index=1))
    folder.close()
    read = list(folder.iter_trajectories())
    assert [(t.task.id, t.sample_index) for t in read] == [("e1", 0), ("c1", 0), ("c1", 1)]
    assert read[0].graded and read[0].score == 1.0


def reply(text: str | None = None, *calls: dict) -> dict:
    message: dict = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = list(calls)
    return message


def test_the_book_groups_by_conversation_prefix_and_survives_a_restart(tmp_path):
    folder = RunFolder(tmp_path)
    book = EpisodeBook(folder, "m", PRICE)
    usage = Usage(prompt_tokens=100, completion_tokens=10, cached_prompt_tokens=60, calls=1)
    start = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    r1 = reply(None, call("f", '{"a": 1}', "c1"))
    one = book.record(start, r1, usage, 0.1, tools=[{"type": "function", "function": {"name": "f"}}])
    # the client re-serialises the reply its own way: "" for null content, extra null fields, re-spaced arguments
    resent = {"role": "assistant", "content": "", "refusal": None, "tool_calls": [call("f", '{"a":1}', "c1")]}
    second = [*start, resent, {"role": "tool", "tool_call_id": "c1", "content": "result 1"}]
    two = book.record(second, reply("done"), usage, 0.1)
    other = book.record(start, reply("hello"), usage, 0.1)  # the same opening again: a new episode
    assert two.task.id == one.task.id and other.task.id != one.task.id
    assert two.steps[0].observation == "result 1" and two.final_answer == "done" and len(two.steps) == 2
    assert two.steps[0].usage.cost_usd == PRICE.dollars(usage) and two.usage.calls == 2
    folder.close()

    again = EpisodeBook(RunFolder(tmp_path), "m", PRICE)
    assert again.load() == 2
    third = [*second, reply("done"), {"role": "user", "content": "and more?"}]
    more = again.record(third, reply("more"), usage, 0.1)
    assert more.task.id == one.task.id and len(more.steps) == 3 and more.revision == 2
    graded = again.grade(one.task.id, 0.4)
    assert graded.graded and not graded.success and graded.score == 0.4
    again.folder.close()
    episodes = list(RunFolder(tmp_path).iter_trajectories())
    assert [len(t.steps) for t in episodes] == [3, 1] and episodes[0].graded and not episodes[1].graded


def test_the_filters_skip_ungraded_episodes_and_dedupe_tool_calls():
    def episode(task_id: str, graded: bool, arguments: str) -> Trajectory:
        step = Step(index=0, role="teacher", output="", tool_calls=[ToolCall(name="f", arguments=arguments)])
        return Trajectory(task=Task(id=task_id, prompt="same question"), policy="gateway:m", steps=[step],
                          messages=[{"role": "user", "content": "same question"}], graded=graded, score=1.0,
                          success=graded)

    report = filter_trajectories([episode("a", False, '{"x": 1}'), episode("b", True, '{"x": 1}'),
                                  episode("c", True, '{ "x" : 1 }'), episode("d", True, '{"x": 2}')],
                                 config=None)
    assert [t.task.id for t in report.kept] == ["b", "c", "d"]
    assert report.dropped == {"ungraded (no outcome yet: send feedback for them)": 1}
    assert "1 ungraded" in report.summary()
    by_prompt = filter_trajectories([episode("b", True, '{"x": 1}'), episode("c", True, '{ "x" : 1 }')],
                                    FilterConfig(dedupe="prompt"))
    assert [t.task.id for t in by_prompt.kept] == ["b"] and by_prompt.dropped == {"duplicates": 1}


def test_the_gateway_refuses_a_run_folder_of_another_job(tmp_path):
    folder = RunFolder(tmp_path)
    folder.start({"command": "collect", "env": "factqa", "teacher": "reference"}, {})
    folder.close()
    gateway = Gateway(GatewaySettings(teacher="openai/fake-teacher", run=tmp_path, api_base="http://127.0.0.1:9/v1"))
    with pytest.raises(RunFolderError, match="holds a different job"):
        gateway.open()
