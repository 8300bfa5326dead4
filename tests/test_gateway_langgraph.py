"""A real client, unchanged: langgraph's prebuilt ReAct agent with langchain-openai's `ChatOpenAI`, written as a user
writes it for OpenAI, with three Python tools over apiworld's payment database, pointed at `agentkd gateway`.

The teacher is the labelled fake OpenAI-compatible API (tests/fake_openai.py: it stands in for a paid API; offered
`search_contacts` it runs a scripted payment agent). The fast test checks the episodes recorded and the feedback; the
slow one indexes them and runs the same agent against `agentkd gateway --cascade` with a real llama.cpp student
(Qwen2.5-Coder-0.5B, one thread). The test checks that the cascade answers and records; whether this small
student solves the task is measured, not asserted."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fake_openai import FakeOpenAI
from test_gateway_cascade import gateway

from agentkd.run import RunFolder
from agentkd.run.layout import RunLayout
from envs.apiworld.db import add_payment, today
from envs.apiworld.scenarios import build_episode

STUDENT = "gguf/qwen2.5-coder-0.5b"

pytest.importorskip("langchain_openai")
pytest.importorskip("langgraph.prebuilt")


SYSTEM = ("You handle the user's payments with the tools. A payment needs the contact's id: find it with "
          "search_contacts first.")


# the user's agent, as written for OpenAI ----------------------------------------------------------------------------
def payment_tools(db: dict[str, Any]) -> list[Any]:
    """Three tools over the user's payment app (an apiworld database)."""
    from langchain_core.tools import tool

    @tool
    def search_contacts(name: str) -> str:
        """Find the contacts whose name contains `name`. Returns a JSON list of {id, name, email}."""
        needle = name.strip().lower()
        return json.dumps([{"id": c["id"], "name": c["name"], "email": c["email"]} for c in db["contacts"]
                           if needle in c["name"].lower()])

    @tool
    def send_payment(to: str, amount: float, note: str) -> str:
        """Send `amount` dollars to the contact whose id is `to` (from search_contacts), with a note."""
        if not any(c["id"] == to for c in db["contacts"]):
            return f"error: no contact with id {to!r}; use an id from search_contacts"
        return json.dumps(add_payment(db, today(db), "out", to, amount, note))

    @tool
    def list_payments(since_days: int) -> str:
        """The payments of the last `since_days` days, newest first, as a JSON list."""
        since = (today(db) - timedelta(days=int(since_days))).isoformat()
        return json.dumps(sorted((p for p in db["payments"] if p["date"] >= since), key=lambda p: p["date"],
                                 reverse=True))

    return [search_contacts, send_payment, list_payments]


def run_agent(base: str, db: dict[str, Any], task: str) -> tuple[list[Any], str]:
    """The prebuilt ReAct agent on one task; returns its messages and the episode id the gateway gave."""
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    model = ChatOpenAI(model="gpt-4o-mini", base_url=base, api_key="unused", temperature=0, max_retries=0,
                       include_response_headers=True)
    agent = create_react_agent(model, payment_tools(db), prompt=SYSTEM)
    result = agent.invoke({"messages": [("user", task)]}, {"recursion_limit": 12})
    replies = [m.response_metadata["headers"] for m in result["messages"]
               if "headers" in getattr(m, "response_metadata", {})]  # langgraph may end with a message of its own
    headers = {k.lower(): v for k, v in replies[-1].items()}
    return result["messages"], headers["x-agentkd-episode"]


# the task and its grade ---------------------------------------------------------------------------------------------
def payment_task(seed: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """An apiworld database, a payment task over it and the payment it asks for."""
    db, _ = build_episode(seed, "top_payer")
    rng = random.Random(seed)
    contact = rng.choice(db["contacts"])
    amount, note = round(rng.uniform(5, 80), 2), rng.choice(["lunch", "taxi", "tickets"])
    return db, f"Send ${amount:.2f} to {contact['name']} with the note '{note}'.", {
        "contact_id": contact["id"], "amount": amount, "note": note}


def grade(db: dict[str, Any], before: int, wanted: dict[str, Any]) -> float:
    """1.0 when the only new payment is the one asked for."""
    new = db["payments"][before:]
    return float(len(new) == 1 and new[0]["contact_id"] == wanted["contact_id"]
                 and abs(new[0]["amount"] - wanted["amount"]) < 0.005 and new[0]["note"] == wanted["note"])


def teach(base: str, seeds: list[str]) -> list[str]:
    """The agent on one task per seed, each graded by feedback; returns the episode ids."""
    episodes = []
    for seed in seeds:
        db, task, wanted = payment_task(seed)
        before = len(db["payments"])
        messages, episode = run_agent(base, db, task)
        score = grade(db, before, wanted)
        assert score == 1.0, [m.content for m in messages]
        answer = httpx.post(f"{base}/feedback", json={"episode_id": episode, "score": score})
        assert answer.status_code == 200 and answer.json()["steps"] == 3
        episodes.append(episode)
    return episodes


def test_the_langgraph_agent_is_recorded_through_the_gateway_and_graded_by_feedback(tmp_path):
    run = tmp_path / "run"
    with FakeOpenAI() as fake:
        with gateway(fake, "--teacher", "openai/fake-teacher", "--api-base", fake.base, "--run", str(run)) as base:
            episodes = teach(base, ["lg-0", "lg-1"])
    recorded = {t.task.id: t for t in RunFolder(run).iter_trajectories()}
    assert sorted(recorded) == sorted(episodes)  # each episode once
    for episode in recorded.values():
        assert episode.graded and episode.success and episode.task.prompt.startswith("Send $")
        assert [s.tool_calls[0].name if s.tool_calls else None for s in episode.steps] == [
            "search_contacts", "send_payment", None]
        assert {t["function"]["name"] for t in episode.tools} == {"search_contacts", "send_payment", "list_payments"}
        assert episode.steps[0].observation.startswith('[{"id"') and episode.usage.calls == 3


@pytest.mark.slow
def test_the_langgraph_agent_runs_unchanged_against_the_cascade(tmp_path):
    from agentkd.store.build import IndexJob

    run = tmp_path / "run"
    with FakeOpenAI() as fake:
        with gateway(fake, "--teacher", "openai/fake-teacher", "--api-base", fake.base, "--run", str(run)) as base:
            teach(base, ["lg-0", "lg-1", "lg-2"])
        indexed = IndexJob(run=run).execute()
        assert indexed.added == 9  # three replies of each episode
        asked = len(fake.requests)
        with gateway(fake, "--cascade", str(run), "--student", STUDENT, "--threshold", "0.9") as base:
            db, task, wanted = payment_task("lg-9")
            before = len(db["payments"])
            messages, episode = run_agent(base, db, task)
            score = grade(db, before, wanted)
            httpx.post(f"{base}/feedback", json={"episode_id": episode, "score": score}).raise_for_status()
        deferred = len(fake.requests) - asked
    layout = RunLayout(run)
    (traj,) = RunFolder(run, trajectories=layout.eval_trajectories("gateway-cascade"),
                        config=layout.eval_settings("gateway-cascade")).iter_trajectories()
    assert traj.task.id == episode and traj.graded and traj.score == score
    assert all(s.vote is not None and s.vote.mode == "confidence" and s.vote.threshold == 0.9 for s in traj.steps)
    roles = [s.role for s in traj.steps]
    assert roles.count("teacher") == deferred and "student" in roles, roles
    assert all(s.vote.accepted == (s.role == "student") for s in traj.steps)
    print(f"cascade: {[(s.role, [c.name for c in s.tool_calls or []]) for s in traj.steps]}, confidences {[round(s.vote.confidence or 0, 3) for s in traj.steps]}, score {score}")


@pytest.mark.slow
def test_the_langgraph_agent_with_a_real_local_teacher_and_then_the_cascade(tmp_path):
    """The teacher is Qwen2.5-Coder-1.5B run by the gateway itself (`--teacher gguf/...`), its tool calls read from its
    chat template's format; the cascade's student is the 0.5B model, deferring to it."""
    from agentkd.store.build import IndexJob

    run = tmp_path / "run"
    scores = {}
    with gateway(None, "--teacher", "gguf/qwen2.5-coder-1.5b", "--run", str(run)) as base:
        for seed in ("lt-0",):
            db, task, wanted = payment_task(seed)
            before = len(db["payments"])
            _, episode = run_agent(base, db, task)
            scores[episode] = grade(db, before, wanted)
            httpx.post(f"{base}/feedback", json={"episode_id": episode, "score": scores[episode]}).raise_for_status()
    recorded = {t.task.id: t for t in RunFolder(run).iter_trajectories()}
    assert sorted(recorded) == sorted(scores)
    for episode, traj in recorded.items():
        assert traj.graded and traj.score == scores[episode] and traj.policy == "gateway:gguf/qwen2.5-coder-1.5b"
        assert traj.steps[0].tool_calls, traj.steps[0].output  # the real teacher called a tool
    print(f"teacher: {[[c.name for s in t.steps for c in s.tool_calls or []] for t in recorded.values()]}, "
          f"scores {list(scores.values())}")
    if any(scores.values()):
        IndexJob(run=run).execute()
    with gateway(None, "--cascade", str(run), "--student", STUDENT, "--threshold", "0.9") as base:
        db, task, wanted = payment_task("lt-9")
        before = len(db["payments"])
        _, episode = run_agent(base, db, task)
        score = grade(db, before, wanted)
    layout = RunLayout(run)
    (traj,) = RunFolder(run, trajectories=layout.eval_trajectories("gateway-cascade"),
                        config=layout.eval_settings("gateway-cascade")).iter_trajectories()
    assert traj.task.id == episode and all(s.vote is not None and s.vote.mode == "confidence" for s in traj.steps)
    assert all(s.model == ("gguf/qwen2.5-coder-1.5b" if s.role == "teacher" else STUDENT) for s in traj.steps)
    print(f"cascade: {[(s.role, [c.name for c in s.tool_calls or []]) for s in traj.steps]}, "
          f"confidences {[round(s.vote.confidence or 0, 3) for s in traj.steps]}, score {score}")
