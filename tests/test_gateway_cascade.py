"""`agentkd gateway --cascade RUN --student MODEL`: a local student answers, the teacher when the student is unsure.

Fast tests check the pieces without a model: which student replies can be sent, tool-call steps as demonstration
records, deferred tool-call steps read by the preference machinery, the command's options. The slow test runs the
gateway as a user does, with a real llama.cpp student (Qwen2.5-Coder-0.5B, one thread) in front of the labelled fake
teacher API (tests/fake_openai.py, standing in for a paid API), driven by the OpenAI SDK's tool loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

import httpx
import pytest
from fake_openai import FAKE_KEY, TOOLS, FakeOpenAI
from servers import ROOT, free_port
from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.gateway.answer import unusable
from agentkd.gateway.calibration import calibrate_traffic
from agentkd.gateway.protocol import chat_request
from agentkd.gateway.student import StudentAnswer, conversation_state, with_demonstrations
from agentkd.models.tool_text import parse_tool_reply
from agentkd.records import Step, Task, ToolCall, Trajectory, Usage, Vote
from agentkd.run import RunFolder
from agentkd.run.layout import RunLayout
from agentkd.store.records import records_from_trajectory
from agentkd.train.preferences import build_preferences

EPISODE = "x-agentkd-episode"
ANSWERED = "x-agentkd-answered-by"
CONVERSATION = [{"role": "system", "content": "You answer with the tools."},
                {"role": "user", "content": "What is the weather and the time in Paris?"}]


def said(text: str) -> StudentAnswer:
    return StudentAnswer(reply=parse_tool_reply(text), confidence=0.99, usage=Usage(), latency_s=0.0,
                         model="gguf/qwen2.5-coder-0.5b", demonstrations=0)


def test_a_student_reply_is_sent_only_when_it_does_what_the_request_allows():
    request = chat_request({"messages": CONVERSATION, "tools": TOOLS})
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    assert unusable(said(call), request) is None
    assert unusable(said("It is sunny."), request) is None
    assert "did not offer" in unusable(said('<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>'), request)
    assert "JSON object" in unusable(said('<tool_call>{"name": </tool_call>'), request)
    cut = said(call)
    cut.finish_reason = "length"
    assert "max_tokens" in unusable(cut, request)
    assert "empty" in unusable(said("  "), request)
    assert "twice" in unusable(said(call + call), request)
    required = chat_request({"messages": CONVERSATION, "tools": TOOLS, "tool_choice": "required"})
    assert "requires" in unusable(said("It is sunny."), required)
    named = chat_request({"messages": CONVERSATION, "tools": TOOLS,
                          "tool_choice": {"type": "function", "function": {"name": "get_time"}}})
    assert "get_time" in unusable(said(call), named)
    none = chat_request({"messages": CONVERSATION, "tools": TOOLS, "tool_choice": "none"})
    assert "none" in unusable(said(call), none)


def test_a_student_reply_repeating_an_earlier_reply_to_the_same_state_goes_to_the_teacher():
    def turn(call_id: str, city: str) -> dict:
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": f'{{"city": "{city}"}}'}}]}

    def result(call_id: str, text: str) -> dict:
        return {"role": "tool", "tool_call_id": call_id, "content": text}

    error = "error: unknown city"
    looping = [*CONVERSATION, turn("a", "Pariss"), result("a", error)]
    again = '<tool_call>{"name": "get_weather", "arguments": {"city": "Pariss"}}</tool_call>'
    fixed = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    request = chat_request({"messages": looping, "tools": TOOLS})
    assert unusable(said(fixed), request) is None  # the first answer to this state
    assert unusable(said(again), request) is None  # the call did not answer this state before
    twice = chat_request({"messages": [*looping, turn("b", "Pariss"), result("b", error)], "tools": TOOLS})
    assert "repeats an earlier reply" in unusable(said(again), twice)
    assert unusable(said(fixed), twice) is None
    moved = chat_request({"messages": [*looping, turn("b", "Pariss"), result("b", "error: try again")], "tools": TOOLS})
    assert unusable(said(again), moved) is None  # a new state: the same call may be right
    texts = [*CONVERSATION, {"role": "assistant", "content": "Which city?"}, {"role": "user", "content": "?"}]
    echoed = chat_request({"messages": [*texts, {"role": "assistant", "content": "Which  city?"},
                                        {"role": "user", "content": "?"}], "tools": TOOLS})
    assert "repeats an earlier reply" in unusable(said("Which city?"), echoed)


def test_the_student_sees_demonstrations_in_its_system_message_and_is_found_by_goal_and_state():
    assert with_demonstrations(CONVERSATION, []) is CONVERSATION
    shown = with_demonstrations(CONVERSATION, [("Weather in Oslo?", "step one")])
    assert shown[0]["role"] == "system" and shown[0]["content"].startswith("You answer with the tools.")
    assert "Example 1 (task: Weather in Oslo?)\nstep one" in shown[0]["content"] and shown[1:] == CONVERSATION[1:]
    assert with_demonstrations(CONVERSATION[1:], [("g", "d")])[0]["role"] == "system"
    assert conversation_state(CONVERSATION) == ("What is the weather and the time in Paris?", "")
    later = [*CONVERSATION, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "sunny in Paris"}]
    assert conversation_state(later)[1] == "sunny in Paris"


def tool_episode(deferred: bool = True) -> Trajectory:
    """A cascade gateway episode: the student's first call taken, the second deferred, the answer deferred."""
    calls = [ToolCall(name="get_weather", arguments='{"city": "Paris"}', id="c1"),
             ToolCall(name="get_time", arguments='{"city": "Paris"}', id="c2")]
    vote = Vote(mode="confidence", accepted=not deferred, winner_index=0, winner_count=1, needed=1, group_sizes=[1],
                unusable=0, confidence=0.5, threshold=0.9)
    taken = Vote(**{**vote.model_dump(), "accepted": True, "confidence": 0.95})
    messages = [*CONVERSATION,
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny in Paris"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "c2", "content": "10:00 in Paris"},
                {"role": "assistant", "content": "Sunny, 10:00."}]
    steps = [Step(index=0, role="student", output="", tool_calls=calls[:1], vote=taken, observation="sunny in Paris",
                  candidates=['{"name": "get_weather", "arguments": {"city": "Paris"}}']),
             Step(index=1, role="teacher", output="", tool_calls=calls[1:], vote=vote, observation="10:00 in Paris",
                  candidates=['{"name": "get_weather", "arguments": {"city": "Paris"}}']),
             Step(index=2, role="teacher", output="Sunny, 10:00.", vote=vote, candidates=["I do not know."])]
    return Trajectory(task=Task(id="ep-1", prompt=CONVERSATION[1]["content"],
                                metadata={"source": "gateway", "reply_positions": [2, 4, 6]}),
                      policy="gateway-cascade:s+teacher:t", messages=messages, tools=TOOLS, steps=steps,
                      graded=True, success=True, score=1.0)


def test_tool_call_steps_become_demonstration_records():
    records = records_from_trajectory(tool_episode())
    assert [r.step_index for r in records] == [1, 2]  # teacher replies only
    call, answer = records
    assert call.metadata["action_kind"] == "tool_calls" and answer.metadata["action_kind"] == "text"
    assert call.context == "sunny in Paris" and call.goal == CONVERSATION[1]["content"]
    assert '"get_time"' in call.action and "<tool_call>" in call.action
    assert "Earlier step:" in call.demo and "Result: sunny in Paris" in call.demo and call.demo.endswith(call.action)
    assert answer.action == "Sunny, 10:00."


def test_deferred_tool_call_steps_are_preference_pairs(tmp_path):
    layout = RunLayout(tmp_path)
    folder = RunFolder(tmp_path, trajectories=layout.eval_trajectories("gateway-cascade"),
                       config=layout.eval_settings("gateway-cascade"))
    folder.start({"command": "gateway-cascade", "teacher": "t", "student": "s"}, {})
    folder.append(tool_episode())
    folder.close()
    pairs, counts = build_preferences(tmp_path)
    assert counts["kept"] == 2 and {p.step_index for p in pairs} == {1, 2}
    call = next(p for p in pairs if p.step_index == 1)
    assert '"get_time"' in call.chosen and '"get_weather"' in call.rejected and call.source == "deferral"
    assert call.prompt == tool_episode().messages[:4] and call.provenance["tools"] == TOOLS
    assert call.provenance["vote"]["mode"] == "confidence"
    answer = next(p for p in pairs if p.step_index == 2)
    assert answer.chosen == "Sunny, 10:00." and answer.rejected == "I do not know."


def test_the_command_asks_for_a_run_or_a_cascade_with_a_student(tmp_path):
    runner = CliRunner()
    for args, hint in ((["--teacher", "openai/x"], "--run"),
                       (["--teacher", "openai/x", "--run", str(tmp_path), "--cascade", str(tmp_path)], "--run"),
                       (["--cascade", str(tmp_path)], "--student"),
                       (["--run", str(tmp_path), "--student", "gguf/x", "--teacher", "openai/x"], "--student")):
        result = runner.invoke(app, ["gateway", *args])
        assert result.exit_code == 2 and hint in result.output, result.output
    result = runner.invoke(app, ["gateway", "--cascade", str(tmp_path / "none"), "--student", "gguf/x"])
    assert result.exit_code != 0 and "run folder" in result.output


# a real student ---------------------------------------------------------------------------------------------------
@contextmanager
def gateway(fake: FakeOpenAI, *args: str) -> Iterator[str]:
    """`agentkd gateway ARGS` as a process on a free port, as its base URL; stopped with SIGTERM by its pid."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": FAKE_KEY, "AGENTKD_LLAMA_THREADS": "1"}
    env.pop("AGENTKD_GATEWAY_API_KEY", None)
    process = subprocess.Popen([sys.executable, "-m", "agentkd.cli", "gateway", *args, "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                httpx.get(f"{base}/models", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    pytest.fail(f"the gateway exited with {process.returncode}: {process.stderr.read()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("the gateway did not answer within 180 s")
                time.sleep(0.3)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert process.returncode in (0, -signal.SIGTERM), process.stderr.read()[-3000:]


def tool_loop(base: str, city: str, max_turns: int = 4) -> tuple[list[str], list[str]]:
    """The OpenAI SDK's tool loop as a user writes it; returns (episode id, answered-by) of each reply."""
    import openai

    client = openai.OpenAI(base_url=base, api_key="unused")
    tools = {"get_weather": lambda city: f"sunny in {city}", "get_time": lambda city: f"10:00 in {city}"}
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You answer with the tools."},
                                      {"role": "user", "content": f"What is the weather and the time in {city}?"}]
    episodes, answered = [], []
    for _ in range(max_turns):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
        episodes.append(raw.headers.get(EPISODE))
        answered.append(raw.headers.get(ANSWERED))
        message = raw.parse().choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            break
        for call in message.tool_calls:
            function = tools.get(call.function.name)
            result = function(**json.loads(call.function.arguments)) if function else "no such tool"
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return episodes, answered


@pytest.mark.slow
def test_the_cascade_answers_learns_online_and_its_deferrals_are_preference_pairs(tmp_path):
    run = tmp_path / "run"
    student = "gguf/qwen2.5-coder-0.5b"
    with FakeOpenAI() as fake:
        with gateway(fake, "--teacher", "openai/fake-teacher", "--api-base", fake.base, "--run", str(run)) as base:
            (paris, *_), _ = tool_loop(base, "Paris")
            httpx.post(f"{base}/feedback", json={"episode_id": paris, "score": 1.0}).raise_for_status()
        # every request deferred (threshold 1): the teacher answers, and its answers join the store
        with gateway(fake, "--cascade", str(run), "--student", student, "--threshold", "1.0", "--online") as base:
            episodes, answered = tool_loop(base, "Oslo")
            assert answered == ["teacher"] * 3 and len(set(episodes)) == 1
            httpx.post(f"{base}/feedback", json={"episode_id": episodes[0], "score": 1.0}).raise_for_status()
        assert (run / "index" / "meta.json").is_file()
        # every usable reply taken (threshold 0): the student answers with the teacher's steps as demonstrations
        with gateway(fake, "--cascade", str(run), "--student", student, "--threshold", "0.0") as base:
            _, answered = tool_loop(base, "Rome")
            assert answered[0] == "student"
    teacher_episodes = list(RunFolder(run).iter_trajectories())
    assert len(teacher_episodes) == 1 and all(s.role == "teacher" and s.vote is None for s in teacher_episodes[0].steps)
    layout = RunLayout(run)
    cascade = list(RunFolder(run, trajectories=layout.eval_trajectories("gateway-cascade"),
                             config=layout.eval_settings("gateway-cascade")).iter_trajectories())
    oslo, rome = sorted(cascade, key=lambda t: t.task.prompt)
    assert oslo.graded and oslo.success and oslo.policy.startswith("gateway-cascade:gguf/qwen2.5-coder-0.5b")
    for step in oslo.steps:
        assert step.role == "teacher" and step.deferred and step.vote.mode == "confidence"
        assert step.vote.threshold == 1.0 and step.candidates and set(step.usage_split()) == {"student", "teacher"}
        assert step.usage_split()["student"].cost_usd == 0.0 and step.usage_split()["teacher"].cost_usd >= 0.0
    first = rome.steps[0]
    assert first.role == "student" and first.vote.accepted and first.vote.confidence > 0.0
    assert first.tool_calls and first.tool_calls[0].name in {"get_weather", "get_time"}
    assert first.model == student and first.usage.cost_usd == 0.0
    settings = json.loads(layout.eval_settings("gateway-cascade").read_text())
    assert settings["details"]["cascade"]["student"] == student and FAKE_KEY not in json.dumps(settings)
    pairs, counts = build_preferences(run)
    assert pairs and all(p.task_id == oslo.task.id and p.source == "deferral" for p in pairs), counts
    # the graded Oslo episode is the traffic a threshold is chosen from; Rome, ungraded, is left out
    found = calibrate_traffic(run, 0.95)
    assert (found.episodes, found.steps, found.ungraded, found.thresholds_in_use) == (1, 3, 1, [1.0])
    assert found.chosen in found.curve and found.chosen.step_accuracy >= 0.95
