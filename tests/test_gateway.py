"""`agentkd gateway` as a user runs it: a real gateway process on a free port in front of a labelled fake
OpenAI-compatible API (tests/fake_openai.py: it stands in for a paid API), driven by the OpenAI SDK's tool loop
written as for OpenAI. Checks the episodes recorded (each once, grouped by conversation, across a restart), feedback,
the API key, error bodies, streaming, SIGTERM with a request in flight, and that the upstream key is written nowhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from fake_openai import FAKE_KEY, TOOLS, FakeOpenAI
from servers import ROOT, free_port

from agentkd.run import RunFolder
from agentkd.train.filters import filter_trajectories

openai = pytest.importorskip("openai")
GATEWAY_KEY = "gw-local-key-7d21c9"
EPISODE = "x-agentkd-episode"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as api:
        yield api


@contextmanager
def gateway(run: Path, fake: FakeOpenAI, *extra: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`agentkd gateway` in front of the fake, as (process, base URL); stopped with SIGTERM by its pid."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": FAKE_KEY}
    env.pop("AGENTKD_GATEWAY_API_KEY", None)
    process = subprocess.Popen([sys.executable, "-m", "agentkd.cli", "gateway", "--teacher", "openai/fake-teacher",
                                "--api-base", fake.base, "--run", str(run), "--port", str(port), *extra],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/models", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    pytest.fail(f"the gateway exited with {process.returncode}: {process.stderr.read()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("the gateway did not answer within 60 s")
                time.sleep(0.2)
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tool_loop(client: Any, city: str, max_turns: int | None = None,
              messages: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The OpenAI SDK's tool loop as a user writes it: call, run the tools asked for, send their results back, until
    a plain answer. Returns (conversation, the episode id of each reply)."""
    tools = {"get_weather": lambda city: f"sunny in {city}", "get_time": lambda city: f"10:00 in {city}"}
    messages = messages or [{"role": "system", "content": "You answer with the tools."},
                            {"role": "user", "content": f"What is the weather and the time in {city}?"}]
    episodes = []
    turns = 0
    while max_turns is None or turns < max_turns:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, tools=TOOLS,
                                                               temperature=0)
        episodes.append(raw.headers.get(EPISODE))
        message = raw.parse().choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        turns += 1
        if not message.tool_calls:
            break
        for call in message.tool_calls:
            result = tools[call.function.name](**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return messages, episodes


def test_the_sdk_tool_loop_is_recorded_once_per_episode_across_a_restart(tmp_path, fake):
    run = tmp_path / "run"
    with gateway(run, fake) as (_, base):
        client = openai.OpenAI(base_url=base, api_key="unused")
        _, paris = tool_loop(client, "Paris")
        oslo_messages, oslo = tool_loop(client, "Oslo", max_turns=2)  # still going when the gateway stops
    assert len(set(paris)) == 1 and len(paris) == 3 and len(set(oslo)) == 1 and oslo[0] != paris[0]

    with gateway(run, fake) as (_, base):
        client = openai.OpenAI(base_url=base, api_key="unused")
        _, oslo_after = tool_loop(client, "Oslo", messages=oslo_messages)  # the client goes on after the restart
        _, rome = tool_loop(client, "Rome")
        assert oslo_after == [oslo[0]]  # the same episode
        for episode, score in ((paris[0], 1.0), (oslo[0], 0.0)):
            answer = httpx.post(f"{base}/feedback", json={"episode_id": episode, "score": score})
            assert answer.status_code == 200 and answer.json()["steps"] == 3

    episodes = list(RunFolder(run).iter_trajectories())
    assert [t.task.id for t in episodes] == [paris[0], oslo[0], rome[0]]  # each once, in the order begun
    lines = (run / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == 3 + 3 + 3 + 2  # a revision per exchange and per feedback, all kept
    by_id = {t.task.id: t for t in episodes}
    oslo_episode = by_id[oslo[0]]
    assert [s.action_kind for s in oslo_episode.steps] == ["tool_calls", "tool_calls", None]
    assert [c.name for s in oslo_episode.steps[:2] for c in s.tool_calls] == ["get_weather", "get_time"]
    assert oslo_episode.steps[0].observation == "sunny in Oslo" and oslo_episode.final_answer.startswith("In Oslo")
    assert oslo_episode.tools == TOOLS and oslo_episode.messages[-1]["role"] == "assistant"
    step = oslo_episode.steps[1]
    assert step.usage.calls == 1 and step.usage.cached_prompt_tokens == step.usage.prompt_tokens // 2
    assert 0 < step.usage.cost_usd < step.usage.prompt_tokens * 3e-6 + 12 * 15e-6  # cache-aware: cached reads cheaper
    assert (by_id[paris[0]].graded, by_id[paris[0]].success) == (True, True)
    assert (by_id[oslo[0]].graded, by_id[oslo[0]].success) == (True, False)
    assert not by_id[rome[0]].graded
    report = filter_trajectories(episodes)
    assert [t.task.id for t in report.kept] == [paris[0]] and [t.task.id for t in report.failed] == [oslo[0]]
    assert report.dropped["ungraded (no outcome yet: send feedback for them)"] == 1
    forwarded = fake.requests[-1]
    assert forwarded["tools"] == TOOLS and forwarded["temperature"] == 0 and forwarded["model"] == "fake-teacher"
    assert json.loads((run / "run.json").read_text())["identity"] == {"command": "gateway",
                                                                     "teacher": "openai/fake-teacher"}


def test_an_explicit_episode_id_and_a_branch_of_an_earlier_state(tmp_path, fake):
    with gateway(tmp_path / "run", fake) as (_, base):
        client = openai.OpenAI(base_url=base, api_key="unused")
        first = [{"role": "user", "content": "Weather in Lima?"}]
        named = client.chat.completions.with_raw_response.create(
            model="m", messages=first, tools=TOOLS, extra_headers={"X-Agentkd-Episode": "ticket-42"})
        assert named.headers[EPISODE] == "ticket-42"
        by_metadata = client.chat.completions.with_raw_response.create(
            model="m", messages=first, tools=TOOLS, metadata={"episode_id": "ticket-42"})
        assert by_metadata.headers[EPISODE] == "ticket-42"
        messages, ids = tool_loop(client, "Quito")
        branch = messages[:4]  # the first reply and its tool result, then a different turn
        branch.append({"role": "user", "content": "Never mind, the time in Quito?"})
        forked = client.chat.completions.with_raw_response.create(model="m", messages=branch, tools=TOOLS)
        assert forked.headers[EPISODE] not in (ids[0], "ticket-42")
    episodes = {t.task.id: t for t in RunFolder(tmp_path / "run").iter_trajectories()}
    assert len(episodes["ticket-42"].steps) == 2 and len(episodes[ids[0]].steps) == 3
    fork = episodes[forked.headers[EPISODE]]
    assert fork.task.metadata["forked_from"] == ids[0] and len(fork.steps) == 2


def test_keys_errors_and_streaming(tmp_path, fake):
    run = tmp_path / "run"
    with gateway(run, fake, "--api-key", GATEWAY_KEY, "--max-body-mb", "0.05") as (process, base):
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base, api_key="wrong").models.list()
        refused = httpx.post(f"{base}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        auth = {"Authorization": f"Bearer {GATEWAY_KEY}"}
        bad_json = httpx.post(f"{base}/chat/completions", content=b"{not json", headers=auth)
        assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
        unknown = httpx.post(f"{base}/chat/completions", headers=auth,
                             json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "temprature": 1})
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "temprature"
        huge = httpx.post(f"{base}/chat/completions", headers=auth,
                          json={"model": "m", "messages": [{"role": "user", "content": "x" * 100_000}]})
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
        missing = httpx.post(f"{base}/feedback", headers=auth, json={"episode_id": "nope", "score": 1})
        assert missing.status_code == 404
        out_of_range = httpx.post(f"{base}/feedback", headers=auth, json={"episode_id": "nope", "score": 2})
        assert out_of_range.status_code == 400 and out_of_range.json()["error"]["param"] == "score"

        client = openai.OpenAI(base_url=base, api_key=GATEWAY_KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError) as leaked:  # the fake quotes its key in its error
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "leak it"}])
        assert FAKE_KEY not in str(leaked.value) and "[redacted]" in str(leaked.value)
        chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Time in Bern?"}],
                                                     tools=TOOLS, stream=True, stream_options={"include_usage": True}))
        calls = [c for chunk in chunks for choice in chunk.choices for c in (choice.delta.tool_calls or [])]
        assert calls[0].function.name == "get_weather" and chunks[-1].usage.prompt_tokens > 0
    stderr = process.stderr.read()
    written = [p for p in run.rglob("*") if p.is_file()]
    assert written and not any(FAKE_KEY in p.read_text(errors="replace") for p in written)
    assert not any(GATEWAY_KEY in p.read_text(errors="replace") for p in written)
    assert FAKE_KEY not in stderr and GATEWAY_KEY not in stderr


def test_sigterm_lets_a_request_in_flight_finish_and_leaves_whole_lines(tmp_path, fake):
    run = tmp_path / "run"
    with gateway(run, fake) as (process, base):
        answers: list[httpx.Response] = []
        request = threading.Thread(target=lambda: answers.append(httpx.post(
            f"{base}/chat/completions", timeout=30,
            json={"model": "m", "messages": [{"role": "user", "content": "slow: weather in Cairo?"}], "tools": TOOLS})))
        request.start()
        time.sleep(0.8)  # the fake holds the reply for 2 s
        process.send_signal(signal.SIGTERM)
        request.join(30)
        process.wait(timeout=30)
    assert answers and answers[0].status_code == 200
    data = (run / "trajectories.jsonl").read_text()
    assert data.endswith("\n") and len(data.splitlines()) == 1
    assert [t.task.id for t in RunFolder(run).iter_trajectories()] == [answers[0].headers[EPISODE]]
