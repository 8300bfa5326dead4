"""The FAISS demonstration store with the packaged MiniLM embedder and real factqa teacher steps."""

import asyncio
from collections import Counter

import pytest

from agentkd import ReferencePolicy
from agentkd.collect import RunFolder, collect
from agentkd.demos import DemoStore, StoreError, StoreMismatchError, records_from_trajectory


@pytest.fixture(scope="module")
def trajectories(factqa, tmp_path_factory):
    folder = RunFolder(tmp_path_factory.mktemp("teacher"))
    asyncio.run(collect(factqa, ReferencePolicy(), factqa.tasks("train", 90), folder, concurrency=8))
    return list(folder.iter_trajectories())


@pytest.fixture(scope="module")
def store(trajectories):
    return DemoStore.build(trajectories[:80])


def test_records_are_teacher_steps_with_goal_context_and_demo(trajectories):
    traj = next(t for t in trajectories if len(t.steps) >= 2)
    records = records_from_trajectory(traj, window=1)
    assert len(records) == len(traj.steps)
    assert records[0].context == "" and records[1].context == traj.steps[0].observation[:1000] + (
        "..." if len(traj.steps[0].observation) > 1000 else "")
    assert records[1].demo.endswith(f"```python\n{traj.steps[1].action}\n```")
    assert "Observation:" in records[1].demo and records[0].goal == traj.task.prompt


def test_retrieval_prefers_steps_from_questions_of_the_same_kind(store, factqa):
    """Held-out test questions (disjoint entities): the top hit comes from the same question template."""
    same_template, same_kind = Counter(), Counter()
    tasks = factqa.tasks("test", 60)
    for task in tasks:
        record, _ = store.search(task.prompt, "", k=3)[0]
        same_template[record.metadata["template"] == task.metadata["template"]] += 1
        same_kind[record.metadata["kind"] == task.metadata["kind"]] += 1
    assert same_kind[True] >= 0.95 * len(tasks), same_kind
    assert same_template[True] >= 0.9 * len(tasks), same_template


def test_entity_masking():
    from agentkd.demos.store import mask_entities

    assert mask_entities("Who was born earlier, Abc Def or Ghi Jkl?") == "Who was born earlier, X or X?"
    assert mask_entities("In which city is the Veltrano Guild?") == "In which city is the X?"


def test_context_key_finds_the_matching_step_of_an_episode(store, trajectories):
    traj = next(t for t in trajectories[:80] if len(t.steps) >= 3)
    record, _ = store.search(traj.task.prompt, traj.steps[1].observation, k=1, goal_weight=0.3)[0]
    assert (record.task_id, record.step_index) == (traj.task.id, 2)


def test_save_load_round_trip_and_embedder_mismatch(store, tmp_path, factqa):
    store.save(tmp_path / "index")
    again = DemoStore.load(tmp_path / "index")
    query = factqa.tasks("test")[5].prompt
    assert [r.id for r, _ in again.search(query, "", k=4)] == [r.id for r, _ in store.search(query, "", k=4)]
    assert again.meta["count"] == len(store) and again.meta["embedder"] == "all-MiniLM-L6-v2"

    class OtherEmbedder:
        name = "other-embedder"

        def embed(self, texts):
            raise AssertionError("never called")

    with pytest.raises(StoreMismatchError, match="all-MiniLM-L6-v2.*other-embedder"):
        DemoStore.load(tmp_path / "index", OtherEmbedder())
    with pytest.raises(StoreError, match="agentkd index"):
        DemoStore.load(tmp_path / "missing")
    (tmp_path / "index" / "goal.npy").write_bytes(b"broken")
    with pytest.raises(StoreError, match="unreadable"):
        DemoStore.load(tmp_path / "index")


def test_incremental_add_and_hnsw_agree_with_flat(store, trajectories, factqa):
    grown = DemoStore.build(trajectories[:80], embedder=store.embedder)
    before = len(grown)
    added = grown.add_trajectories(trajectories)  # only the 10 new episodes are added
    assert added == len(grown) - before > 0
    assert grown.add_trajectories(trajectories) == 0
    new_task = trajectories[-1].task
    assert grown.search(new_task.prompt, "", k=1)[0][0].task_id == new_task.id
    hnsw = DemoStore.build(trajectories, embedder=store.embedder, hnsw_threshold=50)
    assert hnsw.kind == "hnsw" and grown.kind == "flat"
    for task in factqa.tasks("test", 10):
        assert [r.id for r, _ in hnsw.search(task.prompt, "", k=3)] == [r.id for r, _ in grown.search(task.prompt, "", k=3)]


def test_bad_queries(store):
    with pytest.raises(ValueError, match="k must be"):
        store.search("q", "", k=0)
    assert DemoStore(store.embedder).search("q", "") == []
