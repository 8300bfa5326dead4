"""The FAISS demonstration store on real factqa teacher trajectories, the real MiniLM and real FAISS."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import agentkd
from agentkd.collect import collect
from agentkd.records import Step, Trajectory
from agentkd.run import RunFolder
from agentkd.store import (
    DemoStore,
    LiteLLMEmbedder,
    StepRecord,
    StoreError,
    StoreMismatchError,
    records_from_trajectory,
)
from agentkd.store.keys import mask_names


def _collect(env, split: str, n: int, folder: Path) -> list[Trajectory]:
    asyncio.run(collect(env, agentkd.ReferencePolicy(), env.tasks(split, n), RunFolder(folder), concurrency=8))
    return list(RunFolder(folder).iter_trajectories())


@pytest.fixture(scope="module")
def embedder():
    import torch

    from agentkd.models.embeddings import default_embedder

    # The test box has 2 shared cores: torch's 2-thread pool is many times slower there than 1 thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield default_embedder()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(factqa, tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    return {"train": _collect(factqa, "train", 60, root / "train"), "test": _collect(factqa, "test", 20, root / "test")}


@pytest.fixture(scope="module")
def store(data, embedder) -> DemoStore:
    return DemoStore.build(data["train"], embedder=embedder)


def _queries(trajs: list[Trajectory]) -> list[tuple[str, str]]:
    return [(t.task.prompt, t.steps[i - 1].observation if i else "") for t in trajs for i in range(len(t.steps))]


def _ids(hits: list[tuple[StepRecord, float]]) -> list[str]:
    return [record.id for record, _ in hits]


def _assert_same_hits(got: list[tuple[StepRecord, float]], want: list[tuple[StepRecord, float]], tol: float = 1e-4) -> None:
    """Same scores (within tol) and same records, except that near-ties may come in another order.

    A text's MiniLM vector differs in the last bits with the batch it was embedded in (a cached query
    goal was embedded beside another context).
    """
    assert len(got) == len(want)
    assert all(abs(g - w) <= tol for (_, g), (_, w) in zip(got, want)), (got, want)
    for (record, score) in got:
        ties = {r.id for r, s in want if abs(s - score) <= tol}
        assert record.id in ties or abs(score - want[-1][1]) <= tol, record.id


def test_records_from_trajectory(data):
    traj = next(t for t in data["train"] if len(t.steps) == 3)
    records = records_from_trajectory(traj)
    assert [r.id for r in records] == [f"{traj.task.id}:0:{i}" for i in range(3)]
    first, second = records[0], records[1]
    assert first.context == "" and second.context == traj.steps[0].observation[:1000]
    assert first.goal == traj.task.prompt and first.action == traj.steps[0].action
    assert first.demo == traj.steps[0].output  # "Thought: ...\n```python\n...\n```"
    assert second.demo.endswith(traj.steps[1].output) and traj.steps[0].action in second.demo
    assert "Observation:" in second.demo and len(second.demo) < len(traj.steps[1].output) + 700
    assert traj.steps[0].action not in records_from_trajectory(traj, window=0)[1].demo
    assert first.metadata["template"] == traj.task.metadata["template"] and "plan" not in first.metadata

    broken = Step(index=1, role="teacher", output="no code", parse_error="no block", observation="no block")
    shifted = [s.model_copy(update={"index": s.index + 1}) for s in traj.steps[1:]]
    edited = traj.model_copy(update={"steps": [traj.steps[0], broken, *shifted]})
    assert [r.step_index for r in records_from_trajectory(edited)] == [0, 2, 3]


def test_mask_names():
    assert mask_names("Who was born earlier, Thaeviar Tusurk or Vorend Thaehiaglound?") == "Who was born earlier, X or X?"
    assert mask_names("In which city are the headquarters of the Glokast Works?") == "In which city are the headquarters of the X?"
    assert mask_names("Error: NameError: name 'x' is not defined") == "Error: NameError: name 'x' is not defined"


def test_build(store, data):
    expected = sum(len(records_from_trajectory(t)) for t in data["train"] if t.success)
    assert len(store) == expected > 100
    meta = store.meta
    assert meta["embedder"] == "all-MiniLM-L6-v2" and meta["dimension"] == 384 and meta["count"] == expected
    assert meta["index"] == "flat" and meta["agentkd"] == agentkd.__version__
    assert meta["goals"] < len({t.task.prompt for t in data["train"]})  # masked goals collapse per template
    hits = store.search(data["train"][0].task.prompt, "", k=4)
    assert len(hits) == 4 and [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_retrieval_finds_the_same_kind_of_question(store, data):
    """Held-out test tasks (disjoint entities): the top step is from a train task of the same template."""
    tests = data["test"]
    first = [store.search(t.task.prompt, "", k=1)[0][0] for t in tests]
    same = sum(r.metadata["template"] == t.task.metadata["template"] for r, t in zip(first, tests))
    assert same >= 0.8 * len(tests), f"{same}/{len(tests)}"
    assert all(r.step_index == 0 for r in first)  # step-0 state -> a step-0 demonstration

    later = [(t, store.search(t.task.prompt, t.steps[i - 1].observation, k=1)[0][0])
             for t in tests for i in range(1, len(t.steps))]
    same_later = sum(r.metadata["template"] == t.task.metadata["template"] for t, r in later)
    assert same_later >= 0.8 * len(later), f"{same_later}/{len(later)}"
    assert all(r.step_index > 0 for _, r in later)


def test_save_load_round_trip(store, data, embedder, tmp_path):
    store.save(tmp_path / "index")
    meta = json.loads((tmp_path / "index" / "meta.json").read_text())
    assert meta["count"] == len(store) and meta["index"] == "flat" and meta["dimension"] == 384
    loaded = DemoStore.load(tmp_path / "index", embedder)
    assert len(loaded) == len(store) and loaded.meta == store.meta
    for goal, context in _queries(data["test"][:8]):
        # the same query vectors (a text's vector varies in its last bits with the batch it was embedded in)
        vectors = store.embed_query(goal, context)
        assert loaded.search_vectors(*vectors, k=6) == store.search_vectors(*vectors, k=6)
        _assert_same_hits(loaded.search(goal, context, k=6), store.search(goal, context, k=6), tol=1e-6)


def test_load_with_another_embedder_is_refused(store, tmp_path):
    store.save(tmp_path / "index")
    with pytest.raises(StoreMismatchError) as info:
        DemoStore.load(tmp_path / "index", LiteLLMEmbedder("openai/text-embedding-3-small"))
    message = str(info.value)
    assert "all-MiniLM-L6-v2" in message and "openai/text-embedding-3-small" in message and "agentkd index" in message


def test_missing_or_damaged_store(store, embedder, tmp_path):
    with pytest.raises(StoreError, match="no demonstration store.*agentkd index"):
        DemoStore.load(tmp_path / "nowhere", embedder)
    folder = tmp_path / "index"
    store.save(folder)
    (folder / "context.faiss").write_bytes(b"not an index")
    with pytest.raises(StoreError, match="damaged"):
        DemoStore.load(folder, embedder)
    store.save(folder)
    lines = (folder / "records.jsonl").read_text().splitlines(keepends=True)
    (folder / "records.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(StoreError, match="records"):
        DemoStore.load(folder, embedder)
    (folder / "meta.json").write_text("{not json")
    with pytest.raises(StoreError, match="meta.json"):
        DemoStore.load(folder, embedder)


def test_incremental_add_crosses_to_hnsw(store, data, embedder, tmp_path):
    old, new = data["train"][:40], data["train"][40:]
    first_count = sum(len(records_from_trajectory(t)) for t in old)
    grown = DemoStore.build(old, embedder=embedder, hnsw_threshold=first_count + 5)
    assert grown.kind == "flat"
    added = grown.add_trajectories(new)
    assert added == len(store) - first_count and len(grown) == len(store)
    assert grown.kind == "hnsw" and grown.add_trajectories(new) == 0  # known episodes are skipped
    fresh = [r for t in new for r in records_from_trajectory(t) if r.context]
    for record in fresh[:10]:
        hits = grown.search(record.goal, record.context, k=4)
        best = hits[0][1]
        assert record.id in {r.id for r, s in hits if s >= best - 1e-5}, record.id
    # the grown HNSW store gives the flat store's results, before and after a save/load round trip
    grown.save(tmp_path / "hnsw")
    loaded = DemoStore.load(tmp_path / "hnsw", embedder)
    assert loaded.kind == "hnsw"
    for goal, context in _queries(data["test"]):
        _assert_same_hits(grown.search(goal, context, k=6), store.search(goal, context, k=6))
        _assert_same_hits(loaded.search(goal, context, k=6), grown.search(goal, context, k=6), tol=1e-6)


def test_hnsw_gives_the_flat_results(store, data, embedder):
    hnsw = DemoStore(embedder, hnsw_threshold=10)
    hnsw.add_records(store.records)
    assert hnsw.kind == "hnsw" and hnsw.meta["index"] == "hnsw"
    for goal, context in _queries(data["test"]):
        for weight in (0.0, 0.5, 1.0):
            vectors = store.embed_query(goal, context)
            flat_hits = store.search_vectors(*vectors, k=4, goal_weight=weight)
            hnsw_hits = hnsw.search_vectors(*vectors, k=4, goal_weight=weight)
            assert _ids(hnsw_hits) == _ids(flat_hits) and hnsw_hits == flat_hits


def test_bad_input(store, embedder, tmp_path):
    with pytest.raises(ValueError, match="k must be"):
        store.search("In which year was X born?", "", k=0)
    with pytest.raises(ValueError, match="goal_weight"):
        store.search("In which year was X born?", "", goal_weight=1.5)
    assert len(store.search("In which year was X born?", "", k=10_000)) == len(store)
    empty = DemoStore.build([], embedder=embedder)
    assert len(empty) == 0 and empty.search("anything", "", k=3) == [] and empty.meta["dimension"] is None
    empty.save(tmp_path / "empty")
    assert len(DemoStore.load(tmp_path / "empty", embedder)) == 0
    assert empty.add_records([]) == 0
    assert store.embed_query("a", "")[1].shape == (384,)


def test_only_successful(data, embedder):
    failed = data["train"][0].model_copy(update={"success": False})
    assert len(DemoStore.build([failed], embedder=embedder)) == 0
    assert len(DemoStore.build([failed], embedder=embedder, only_successful=False)) == len(failed.steps)
    assert Counter(t.success for t in data["train"])[True] == len(data["train"])


class _EmbeddingStub(BaseHTTPRequestHandler):
    """A labelled stand-in for an OpenAI-compatible /embeddings endpoint: vector = (len, vowels, 1, 0),
    returned in reverse order (indexes tell the client which is which)."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        data = [{"object": "embedding", "index": i, "embedding": [len(t), sum(c in "aeiou" for c in t), 1.0, 0.0]}
                for i, t in enumerate(body["input"])]
        reply = json.dumps({"object": "list", "data": data[::-1], "model": body["model"],
                            "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


def test_litellm_embedder_against_a_local_stub(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        embedder = LiteLLMEmbedder("openai/stub-embed", batch_size=2, api_base=f"http://127.0.0.1:{server.server_port}/v1",
                                   api_key="not-needed")
        vectors = embedder.embed(["a", "bbbb", "ae"])
        expected = [[1, 1, 1, 0], [4, 0, 1, 0], [2, 2, 1, 0]]
        assert vectors.shape == (3, 4) and vectors.dtype.name == "float32"
        for got, want in zip(vectors, expected):
            assert got == pytest.approx([x / sum(y * y for y in want) ** 0.5 for x in want], abs=1e-6)
        record = StepRecord(id="t:0:0", task_id="t", sample_index=0, step_index=0, goal="In which year was X born?",
                            context="", thought="look it up", action="print(1)", demo="...")
        store = DemoStore(embedder)
        assert store.add_records([record]) == 1 and store.search("In which year was X born?", "")[0][0].id == "t:0:0"
        store.save(tmp_path / "index")
        assert DemoStore.load(tmp_path / "index", embedder).meta["embedder"] == "openai/stub-embed"
        with pytest.raises(StoreMismatchError, match="openai/stub-embed.*all-MiniLM-L6-v2"):
            DemoStore.load(tmp_path / "index")
    finally:
        server.shutdown()
