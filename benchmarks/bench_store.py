"""Benchmark the FAISS demonstration store (agentkd.store.DemoStore): flat vs HNSW at 10k and 100k records.

In one run this prints:

- embedding throughput of the packaged MiniLM (embeddings/s), measured on real factqa goals and
  observations (--real-tasks episodes), and the embedding time that building each size would take
  (extrapolated: the records of the big stores are not embedded one by one, see below);
- per size and index kind: build time (bookkeeping + FAISS adds, embedding excluded), the latency
  (p50/p99 over --queries queries) of the two-key `DemoStore.search_vectors` path (both FAISS
  searches, candidate expansion, exact re-scoring) and of one raw single-index FAISS query;
- recall@k (default 6) of HNSW against flat, for the raw context index and for the two-key search,
  plus recall of both two-key searches against brute force over every record;
- the latency of one full `DemoStore.search` on real text (MiniLM query embedding included);
- an efSearch sweep of the raw HNSW index at the largest size.

Data: each synthetic episode is a perturbed copy of a real factqa reference episode (2-3 steps:
step 0 has the empty context, later steps the previous observation): its goal and context vectors
are the real MiniLM vectors plus Gaussian noise (cosine ~0.9 to the source), so clusters, spreads
and the goal/context correlation are realistic; ~N/2.7 distinct goals and ~N/1.6 distinct contexts.
They go into the store through a lookup-table embedder (no MiniLM call per record); queries are
perturbed states of the same real episodes, step-0 states included.

    python benchmarks/bench_store.py [--sizes 10000,100000] [--queries 500] [--k 6] [--real-tasks 400]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import agentkd
from agentkd.collect import collect
from agentkd.run import RunFolder
from agentkd.store import EMPTY_CONTEXT, DemoStore, StepRecord
from agentkd.store.keys import mask_names

NOISE = 0.5  # noise norm relative to the unit source vector: cosine to the source ~ 1 / sqrt(1 + 0.25) ~ 0.9


class TableEmbedder:
    """An embedder that looks texts up in a table of precomputed vectors (bench data only)."""

    def __init__(self, table: dict[str, np.ndarray], name: str) -> None:
        self.table = table
        self.name = name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


Episode = tuple[np.ndarray, list[np.ndarray]]
"""A real episode's vectors: its goal and the context of each step after the first."""


def real_episodes(n_tasks: int, embedder: Any) -> tuple[list[Episode], int, float]:
    """factqa reference episodes embedded with MiniLM: (episodes, texts embedded, seconds spent embedding)."""
    env = agentkd.load_environment("factqa")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(collect(env, agentkd.ReferencePolicy(), env.tasks("train", n_tasks), RunFolder(tmp), concurrency=16))
        trajs = sorted(RunFolder(tmp).iter_trajectories(), key=lambda t: t.key)  # file order varies between runs
    # goals unmasked: the real ones collapse to ~10 masked texts, far fewer than a varied environment has
    goals = [t.task.prompt for t in trajs]
    contexts = [[mask_names(s.observation) for s in t.steps[:-1]] for t in trajs]
    texts = list(dict.fromkeys(goals + [c for cs in contexts for c in cs]))
    embedder.embed(texts[:8])
    started = time.perf_counter()
    vectors = dict(zip(texts, embedder.embed(texts)))
    seconds = time.perf_counter() - started
    return [(vectors[g], [vectors[c] for c in cs]) for g, cs in zip(goals, contexts)], len(texts), seconds


def perturb(rng: np.random.Generator, vector: np.ndarray) -> np.ndarray:
    """A unit vector near `vector` (cosine ~0.9)."""
    noise = rng.standard_normal(vector.shape).astype("float32") * (NOISE / np.sqrt(vector.shape[0]))
    moved = vector + noise
    return (moved / np.linalg.norm(moved)).astype("float32")


def synthetic_records(rng: np.random.Generator, n: int, episodes: list[Episode],
                      empty: np.ndarray) -> tuple[list[StepRecord], dict[str, np.ndarray]]:
    """n records of perturbed copies of real episodes, and the vector of every text they use."""
    table = {EMPTY_CONTEXT: empty}
    records: list[StepRecord] = []
    e = 0
    while len(records) < n:
        goal_vector, context_vectors = episodes[rng.integers(len(episodes))]
        goal = f"synthetic goal {e}"
        table[goal] = perturb(rng, goal_vector)
        for s in range(min(1 + len(context_vectors), n - len(records))):
            context = f"synthetic observation {e} {s}" if s else ""
            if s:
                table[context] = perturb(rng, context_vectors[s - 1])
            records.append(StepRecord(id=f"t{e}:0:{s}", task_id=f"t{e}", sample_index=0, step_index=s, goal=goal,
                                      context=context, thought="", action="pass", demo="pass"))
        e += 1
    return records, table


def queries(rng: np.random.Generator, n: int, episodes: list[Episode],
            empty: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Perturbed (goal, context) states of real episodes, step 0 included."""
    out = []
    for _ in range(n):
        goal_vector, context_vectors = episodes[rng.integers(len(episodes))]
        s = int(rng.integers(1 + len(context_vectors)))
        out.append((perturb(rng, goal_vector), perturb(rng, context_vectors[s - 1]) if s else empty))
    return out


def percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):7.3f} ms  p99 {np.percentile(ms, 99):7.3f} ms"


def timed(fn: Any, items: Sequence[Any]) -> tuple[list[float], list[Any]]:
    times, results = [], []
    for item in items:
        started = time.perf_counter()
        results.append(fn(item))
        times.append(time.perf_counter() - started)
    return times, results


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / max(1, len(t)) for f, t in zip(found, truth)]))


def brute_force(store: DemoStore, qs: list[tuple[np.ndarray, np.ndarray]], k: int, weight: float) -> list[np.ndarray]:
    """Exact top-k record rows over every record (the ground truth)."""
    goal_of, context_of = store._entry_array("goal"), store._entry_array("context")
    goal_vectors, context_vectors = store._keys["goal"].vectors.array, store._keys["context"].vectors.array
    out = []
    for g, c in qs:
        scores = weight * (goal_vectors @ g)[goal_of] + (1 - weight) * (context_vectors @ c)[context_of]
        top = np.argpartition(-scores, k)[:k]
        out.append(top[np.argsort(-scores[top], kind="stable")])
    return out


def bench_size(n: int, args: argparse.Namespace, rng: np.random.Generator, episodes: list[Episode],
               empty: np.ndarray, per_text_s: float) -> dict[str, Any]:
    records, table = synthetic_records(rng, n, episodes, empty)
    embedder = TableEmbedder(table, "bench-table (perturbed all-MiniLM-L6-v2 vectors)")
    qs = queries(rng, args.queries, episodes, empty)
    stores: dict[str, DemoStore] = {}
    row: dict[str, Any] = {"n": n, "texts": len(table)}
    print(f"\n== {n} records: {len(table)} distinct texts to embed; MiniLM would take ~{len(table) * per_text_s:.0f} s "
          f"(extrapolated from the measured rate)")
    for kind, threshold in (("flat", n + 1), ("hnsw", 1)):
        store = DemoStore(embedder, hnsw_threshold=threshold, batch_size=4096)
        started = time.perf_counter()
        store.add_records(records)
        build = time.perf_counter() - started
        assert store.kind == kind
        stores[kind] = store
        store.search_rows(*qs[0], k=args.k)  # warm up
        two_key_t, hits = timed(lambda q, s=store: s.search_vectors(q[0], q[1], args.k, args.goal_weight), qs)
        two_key = [np.array([store._row_of[r.id] for r, _ in h]) for h in hits]
        index = store._keys["context"].index
        raw_t, raw = timed(lambda q, i=index: i.search(q[1].reshape(1, -1), args.k)[1][0], qs)
        row[kind] = {"build_s": build, "two_key": two_key, "raw": raw}
        print(f"{kind:>4}: build {build:6.2f} s | DemoStore.search_vectors (two-key) {percentiles(two_key_t)} | "
              f"raw FAISS query ({index.ntotal} context vectors) {percentiles(raw_t)}")
        row[kind].update(two_key_p50_ms=1000 * np.percentile(two_key_t, 50), raw_p50_ms=1000 * np.percentile(raw_t, 50))
    truth = brute_force(stores["flat"], qs, args.k, args.goal_weight)
    step_zero = [i for i, q in enumerate(qs) if q[1] is empty]
    print(f"recall@{args.k}: HNSW vs flat raw index {recall(row['hnsw']['raw'], row['flat']['raw']):.4f} | "
          f"HNSW vs flat two-key {recall(row['hnsw']['two_key'], row['flat']['two_key']):.4f} | "
          f"vs brute force: flat two-key {recall(row['flat']['two_key'], truth):.4f}, "
          f"HNSW two-key {recall(row['hnsw']['two_key'], truth):.4f} "
          f"(step-0 queries: {recall([row['hnsw']['two_key'][i] for i in step_zero], [truth[i] for i in step_zero]):.4f})")
    if n == max(args.sizes):
        sweep(stores["hnsw"], qs, row["flat"]["raw"], args.k)
    return row


def sweep(store: DemoStore, qs: list[tuple[np.ndarray, np.ndarray]], truth: list[np.ndarray], k: int) -> None:
    index = store._keys["context"].index
    default = index.hnsw.efSearch
    parts = []
    for ef in (16, 32, 64, 128):
        index.hnsw.efSearch = ef
        times, found = timed(lambda q: index.search(q[1].reshape(1, -1), k)[1][0], qs)
        parts.append(f"ef {ef}: recall {recall(found, truth):.4f} p50 {1000 * np.percentile(times, 50):.3f} ms")
    index.hnsw.efSearch = default
    print("efSearch sweep, raw context index: " + " | ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated record counts")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--goal-weight", type=float, default=0.5)
    parser.add_argument("--real-tasks", type=int, default=400, help="factqa episodes embedded with MiniLM")
    parser.add_argument("--threads", type=int, default=1, help="torch and FAISS threads (1 is fastest for single queries)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]

    import faiss
    import torch

    from agentkd.models.embeddings import default_embedder

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    embedder = default_embedder()
    episodes, n_texts, embed_s = real_episodes(args.real_tasks, embedder)
    empty = embedder.embed([EMPTY_CONTEXT])[0]
    print(f"MiniLM ({args.threads} thread(s)): {n_texts} real factqa texts (goals and masked observations of "
          f"{len(episodes)} reference episodes) in {embed_s:.2f} s = {n_texts / embed_s:.0f} embeddings/s")
    print(f"store and query vectors: synthetic, perturbed copies (noise {NOISE}) of those real episodes' vectors; "
          f"k={args.k}, goal_weight={args.goal_weight}, {args.queries} queries, FAISS/torch threads={args.threads}")

    for n in args.sizes:
        bench_size(n, args, rng, episodes, empty, embed_s / n_texts)

    with tempfile.TemporaryDirectory() as tmp:
        store = DemoStore.build(_trajectories(Path(tmp) / "train", "train", 60), embedder=embedder)
        test = _trajectories(Path(tmp) / "test", "test", 60)
    states = [(t.task.prompt, t.steps[i - 1].observation) for t in test for i in range(1, len(t.steps))]
    store.search(*states[0])
    times, _ = timed(lambda q: store.search(q[0], q[1], k=args.k), states[1:])
    print(f"\nfull DemoStore.search on real text ({len(store)} real records; {len(states) - 1} unseen factqa states, "
          f"MiniLM embedding of the new observation included, goal cached): {percentiles(times)}")


def _trajectories(folder: Path, split: str, n: int) -> list[Any]:
    env = agentkd.load_environment("factqa")
    asyncio.run(collect(env, agentkd.ReferencePolicy(), env.tasks(split, n), RunFolder(folder), concurrency=8))
    return sorted(RunFolder(folder).iter_trajectories(), key=lambda t: t.key)


if __name__ == "__main__":
    main()
