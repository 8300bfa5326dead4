"""Where an ICD student's demonstrations go: the cached layout keeps each step's prompt an extension of the
previous one, so the in-process llama.cpp door reads it from its KV cache (real SmolLM2 GGUF, real store)."""

from __future__ import annotations

import asyncio

import pytest

import agentkd
from agentkd.agent.loop import CodeActAgent
from agentkd.collect import collect
from agentkd.models.client import ModelClient
from agentkd.policies.settings import ICDSettings
from agentkd.policies.student import DEMO_HEADER, STEP_DEMO_HEADER, StudentPolicy
from agentkd.run import RunFolder
from agentkd.store import DemoStore


@pytest.fixture(scope="module")
def store(factqa, tmp_path_factory):
    import torch

    from agentkd.models.embeddings import default_embedder

    torch.set_num_threads(1)
    folder = RunFolder(tmp_path_factory.mktemp("layout"))
    asyncio.run(collect(factqa, agentkd.ReferencePolicy(), factqa.tasks("train", 20), folder, concurrency=4))
    return DemoStore.build(list(folder.iter_trajectories()), embedder=default_embedder())


def _prompts(policy: StudentPolicy, factqa) -> list[list[dict]]:
    """The student's prompt at each step of a reference episode (the reference acts; the student only renders)."""
    for task in factqa.tasks("test", 10):  # a multi-hop question: three steps or more
        trajectory = CodeActAgent(factqa, agentkd.ReferencePolicy()).run(task)
        if len(trajectory.steps) >= 3:
            break
    assert len(trajectory.steps) >= 3
    prompts = []
    for index in range(len(trajectory.steps)):
        ctx = agentkd.PolicyContext(env=factqa, task=task, steps=trajectory.steps[:index],
                                    messages=_messages(factqa, task, trajectory.steps[:index]))
        prompts.append(policy.messages(ctx))
    return prompts


def _messages(env, task, steps):
    from agentkd.codeact.prompts import initial_messages, observation_message

    messages = initial_messages(env, task)
    for step in steps:
        messages += [{"role": "assistant", "content": step.output}, observation_message(step.observation)]
    return messages


def test_the_cached_layout_extends_the_previous_prompt(store, factqa):
    cached = _prompts(StudentPolicy("gguf/smollm2-135m", store, demo_layout="cached", goal_k=2, k=4), factqa)
    for before, after in zip(cached, cached[1:]):
        assert after[0] == before[0]  # the system prompt with the episode's goal demonstrations never changes
        assert DEMO_HEADER in after[0]["content"] and STEP_DEMO_HEADER in after[-1]["content"]
        # every message but the last of the earlier prompt is repeated as it was
        assert after[:len(before) - 1] == before[:-1]
        assert after[len(before) - 1]["content"] == before[-1]["content"].split("\n\n" + STEP_DEMO_HEADER)[0]
    system = _prompts(StudentPolicy("gguf/smollm2-135m", store, k=4), factqa)
    assert any(a[0] != b[0] for a, b in zip(system, system[1:]))  # the default layout moves the system prompt


def test_goal_demonstrations_are_not_shown_twice(store, factqa):
    prompt = _prompts(StudentPolicy("gguf/smollm2-135m", store, demo_layout="cached", goal_k=2, k=4), factqa)[1]
    goal_block, step_block = prompt[0]["content"], prompt[-1]["content"]
    goal_examples = [part.split("\n")[0] for part in goal_block.split("--- Example ")[1:]]
    assert len(goal_examples) == 2 and step_block.count("--- Example ") == 2


def test_the_layout_is_recorded_only_when_cached():
    assert "demo_layout" not in ICDSettings().model_dump()
    assert ICDSettings(demo_layout="cached").model_dump()["goal_k"] == 2
    with pytest.raises(ValueError, match="goal_k"):
        ICDSettings(demo_layout="cached", k=1, goal_k=2)


@pytest.mark.slow
def test_the_door_reads_the_cached_layout_from_its_kv_cache(store, factqa, monkeypatch):
    monkeypatch.setenv("AGENTKD_LLAMA_THREADS", "1")
    shares = {}
    for layout in ("system", "cached"):
        client = ModelClient("gguf/smollm2-135m", max_tokens=24)
        policy = StudentPolicy(client, store, demo_layout=layout, goal_k=2, k=4)
        prompts = _prompts(policy, factqa)[:3]
        usage = [asyncio.run(client.complete([*p, {"role": "assistant", "content": "Thought:"}])).usage
                 for p in prompts]
        assert all(u.prompt_tokens > 0 for u in usage)
        shares[layout] = sum(u.cached_prompt_tokens for u in usage[1:]) / sum(u.prompt_tokens for u in usage[1:])
        if layout == "cached":
            assert all(u.cached_prompt_tokens > 0 for u in usage[1:])
    assert shares["cached"] > shares["system"] + 0.2, shares
