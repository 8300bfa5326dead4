"""DemoStore: teacher steps in FAISS, searched by two keys (the goal and the current state)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from agentkd.models.embeddings import Embedder
from agentkd.records import Trajectory
from agentkd.store import faiss_index
from agentkd.store.errors import StoreError, StoreMismatchError
from agentkd.store.faiss_index import IndexKind
from agentkd.store.keys import DEFAULT_EMBEDDER_NAME, KEYS, key_text
from agentkd.store.persist import REBUILD, damaged, read_store, write_store
from agentkd.store.records import StepRecord, records_from_trajectory
from agentkd.store.vectors import KeyIndex

EMPTY_CONTEXT = "(first step: nothing has been observed yet)"
"""What is embedded for an empty context (step 0), so every provider gets a non-empty input."""
MIN_FETCH = 32
FETCH_PER_K = 8
QUERY_CACHE_SIZE = 1024


def resolve_embedder(embedder: Embedder | None) -> Embedder:
    """`embedder`, or the packaged MiniLM when None."""
    if embedder is not None:
        return embedder
    from agentkd.models.embeddings import default_embedder

    return default_embedder()


class DemoStore:
    """Teacher steps with unit-normalised goal and context vectors in two FAISS indexes.

    What is embedded is the text with proper names masked (`mask_names`, see `agentkd.store.keys`),
    so that a question about unseen entities finds steps of the same kind of question. Each distinct
    embedded goal and context text is embedded and indexed once; a record points at one entry of
    each. The index is exact (IndexFlatIP) below `hnsw_threshold` records and HNSW at or above it;
    adding records past the threshold rebuilds both indexes as HNSW.
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        hnsw_threshold: int = 20_000,
        window: int = 1,
        only_successful: bool = True,
        batch_size: int = 64,
        mask_names: bool = True,
    ) -> None:
        if hnsw_threshold < 1 or batch_size < 1 or window < 0:
            raise ValueError("hnsw_threshold and batch_size must be >= 1 and window >= 0")
        self.embedder = resolve_embedder(embedder)
        self.hnsw_threshold = hnsw_threshold
        self.window = window
        self.only_successful = only_successful
        self.batch_size = batch_size
        self.mask_names = mask_names
        self.records: list[StepRecord] = []
        self._row_of: dict[str, int] = {}
        self._keys: dict[str, KeyIndex] = {}
        self._entries: dict[str, list[np.ndarray]] = {key: [] for key in KEYS}
        self._entry_arrays: dict[str, np.ndarray] = {}
        self._pairs: dict[tuple[int, int], list[int]] = {}
        """(goal entry, context entry) -> record rows; reaches records of very common texts."""
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    # building -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        trajectories: Iterable[Trajectory],
        embedder: Embedder | None = None,
        window: int = 1,
        batch_size: int = 64,
        hnsw_threshold: int = 20_000,
        only_successful: bool = True,
        mask_names: bool = True,
    ) -> DemoStore:
        """A store of every teacher step of the (successful, by default) trajectories."""
        store = cls(embedder, hnsw_threshold=hnsw_threshold, window=window, only_successful=only_successful,
                    batch_size=batch_size, mask_names=mask_names)
        store.add_trajectories(trajectories)
        return store

    def add_trajectories(self, trajectories: Iterable[Trajectory], only_successful: bool | None = None) -> int:
        """Add the teacher steps of trajectories not in the store yet. Returns the number of records added."""
        keep_failed = not (self.only_successful if only_successful is None else only_successful)
        seen = {(r.task_id, r.sample_index) for r in self.records}
        records = [
            record
            for traj in trajectories
            if (traj.success or keep_failed) and traj.key not in seen
            for record in records_from_trajectory(traj, self.window)
        ]
        return self.add_records(records)

    def add_records(self, records: Sequence[StepRecord]) -> int:
        """Embed and index records (ids already in the store are skipped). Returns the number added."""
        fresh: dict[str, StepRecord] = {}
        for record in records:
            if record.id not in self._row_of and record.id not in fresh:
                fresh[record.id] = record
        new = list(fresh.values())
        if not new:
            return 0
        texts = self._key_texts(new)
        pending = sorted({t for key in KEYS for t in self._new_texts(key, texts[key])})
        vectors = dict(zip(pending, self._embed(pending))) if pending else {}
        if not self._keys:
            dim = len(next(iter(vectors.values())))
            kind = self._kind_for(len(new))
            self._keys = {key: KeyIndex(dim, kind) for key in KEYS}
        rows = list(range(len(self.records), len(self.records) + len(new)))
        entries = {key: self._keys[key].add(texts[key], rows, vectors) for key in KEYS}
        for key in KEYS:
            self._entries[key].append(entries[key])
            self._entry_arrays.pop(key, None)
        self._add_pairs(rows, entries["goal"], entries["context"])
        self.records.extend(new)
        self._row_of.update((r.id, row) for r, row in zip(new, rows))
        if self.kind == "flat" and self._kind_for(len(self)) == "hnsw":
            for key in KEYS:
                self._keys[key].rebuild("hnsw")
        return len(new)

    def _key_texts(self, records: Sequence[StepRecord]) -> dict[str, list[str]]:
        """The embedded text of each record's goal and context."""
        return {"goal": [key_text(r.goal, self.mask_names) for r in records],
                "context": [self._context_key(r.context) for r in records]}

    def _context_key(self, context: str) -> str:
        return key_text(context, self.mask_names) if context.strip() else EMPTY_CONTEXT

    def _add_pairs(self, rows: list[int], goals: np.ndarray, contexts: np.ndarray) -> None:
        for row, pair in zip(rows, zip(goals.tolist(), contexts.tolist())):
            self._pairs.setdefault(pair, []).append(row)

    def _new_texts(self, key: str, texts: list[str]) -> list[str]:
        return self._keys[key].new_texts(texts) if self._keys else list(dict.fromkeys(texts))

    def _kind_for(self, count: int) -> IndexKind:
        return "hnsw" if count >= self.hnsw_threshold else "flat"

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 vectors of `texts`, embedded `batch_size` at a time."""
        parts = [np.asarray(self.embedder.embed(list(texts[i:i + self.batch_size])), dtype="float32")
                 for i in range(0, len(texts), self.batch_size)]
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.dim or 0), dtype="float32")
        if vectors.ndim != 2 or len(vectors) != len(texts) or not np.isfinite(vectors).all():
            raise ValueError(f"embedder {self.embedder.name!r} returned an array of shape {vectors.shape} "
                             f"(or non-finite values) for {len(texts)} texts")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise StoreMismatchError(
                f"embedder {self.embedder.name!r} gives {vectors.shape[1]}-dim vectors but the store holds "
                f"{self.dim}-dim ones; rebuild it with `agentkd index --rebuild`"
            )
        return faiss_index.normalise(vectors)

    # searching ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def dim(self) -> int | None:
        """Vector dimension (None while the store is empty)."""
        return self._keys["goal"].vectors.dim if self._keys else None

    @property
    def kind(self) -> IndexKind:
        """'flat' (exact) or 'hnsw'."""
        return self._keys["goal"].kind if self._keys else self._kind_for(0)

    def embed_query(self, goal: str, context: str) -> tuple[np.ndarray, np.ndarray]:
        """The unit vectors of a goal and a context (recent query texts are cached)."""
        texts = [key_text(goal, self.mask_names), self._context_key(context)]
        missing = [t for t in dict.fromkeys(texts) if t not in self._query_cache]
        if missing:
            for text, vector in zip(missing, self._embed(missing)):
                self._query_cache[text] = vector
        for text in texts:
            self._query_cache.move_to_end(text)
        while len(self._query_cache) > QUERY_CACHE_SIZE:
            self._query_cache.popitem(last=False)
        return self._query_cache[texts[0]], self._query_cache[texts[1]]

    def search(self, goal: str, context: str, k: int = 4, goal_weight: float = 0.5) -> list[tuple[StepRecord, float]]:
        """The k records with the highest goal_weight * cos(goal) + (1 - goal_weight) * cos(context).

        `context` is the latest observation ("" before the first step). An empty store gives [].
        """
        _check_query(k, goal_weight)
        if not self.records:
            return []
        goal_vector, context_vector = self.embed_query(goal, context)
        return self.search_vectors(goal_vector, context_vector, k, goal_weight)

    def search_vectors(
        self, goal: np.ndarray, context: np.ndarray, k: int = 4, goal_weight: float = 0.5
    ) -> list[tuple[StepRecord, float]]:
        """`search` with the query vectors already embedded (unit-normalised)."""
        rows, scores = self.search_rows(goal, context, k, goal_weight)
        return [(self.records[row], score) for row, score in zip(rows.tolist(), scores.tolist())]

    def search_rows(
        self, goal: np.ndarray, context: np.ndarray, k: int = 4, goal_weight: float = 0.5
    ) -> tuple[np.ndarray, np.ndarray]:
        """Record rows and scores of the top k, best first (ties: the earlier-added record first).

        Candidates come from the `max(32, 8k)` nearest goal texts and the as many nearest context
        texts: every record of a text shared by at most `4 * fetch` records, and for a text shared
        by more (a masked question asked many times, the empty step-0 context) its first k records
        plus its records whose other text is among the nearest too. Every candidate is scored
        exactly from the stored vectors.
        """
        _check_query(k, goal_weight)
        if not self.records:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype="float32")
        query = {"goal": faiss_index.as_float32(goal).reshape(-1), "context": faiss_index.as_float32(context).reshape(-1)}
        fetch = max(MIN_FETCH, FETCH_PER_K * k)
        near = {key: self._keys[key].nearest(query[key], fetch).tolist() for key in KEYS}
        candidates = np.unique(np.fromiter(self._candidate_rows(near, k, 4 * fetch), dtype=np.int64))
        scores = np.zeros(len(candidates), dtype="float32")
        query64 = {key: vector.astype(np.float64) for key, vector in query.items()}
        for key, weight in (("goal", goal_weight), ("context", 1.0 - goal_weight)):
            if weight:
                entries, inverse = np.unique(self._entry_array(key)[candidates], return_inverse=True)
                # float64 sums round to the same float32 whatever order BLAS picks for this row count or
                # memory layout: the same query vectors score alike in a loaded (or HNSW) copy of the store.
                cosines = (self._keys[key].vectors.array[entries].astype(np.float64) @ query64[key]).astype("float32")
                scores += np.float32(weight) * cosines[inverse]
        order = np.lexsort((candidates, -scores))[:k]
        return candidates[order], scores[order]

    def _candidate_rows(self, near: dict[str, list[int]], k: int, cap: int) -> Iterable[int]:
        for key in KEYS:
            members = self._keys[key].members
            for entry in near[key]:
                rows = members[entry]
                if len(rows) <= cap:
                    yield from rows
                    continue
                yield from rows[:k]
                for other in near[_other(key)]:
                    pair = (entry, other) if key == "goal" else (other, entry)
                    yield from self._pairs.get(pair, ())[:k]

    def _entry_array(self, key: str) -> np.ndarray:
        """Entry id of every record for `key` (record row -> entry)."""
        array = self._entry_arrays.get(key)
        if array is None:
            parts = self._entries[key]
            array = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            self._entries[key] = [array]
            self._entry_arrays[key] = array
        return array

    # persistence ----------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """What `save` writes to meta.json: embedder, dimension, count, index kind, versions."""
        from agentkd.version import __version__

        return {
            "format": 1,
            "embedder": self.embedder.name,
            "dimension": self.dim,
            "count": len(self),
            "goals": len(self._keys["goal"]) if self._keys else 0,
            "contexts": len(self._keys["context"]) if self._keys else 0,
            "index": self.kind,
            "hnsw_threshold": self.hnsw_threshold,
            "window": self.window,
            "only_successful": self.only_successful,
            "mask_names": self.mask_names,
            "empty_context": EMPTY_CONTEXT,
            "agentkd": __version__,
        }

    def save(self, path: str | Path) -> None:
        """Write the store to the folder `path`: meta.json, records.jsonl, goal.faiss, context.faiss."""
        indexes = {key: self._keys[key].index for key in KEYS} if self.records else {}
        write_store(path, self.records, indexes, self.meta)

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None) -> DemoStore:
        """Read a saved store. Raises StoreMismatchError if it was built with another embedder."""
        folder = Path(path)
        meta, records, indexes = read_store(folder, embedder.name if embedder is not None else DEFAULT_EMBEDDER_NAME)
        store = cls(embedder, hnsw_threshold=int(meta.get("hnsw_threshold", 20_000)), window=int(meta.get("window", 1)),
                    only_successful=bool(meta.get("only_successful", True)),
                    mask_names=bool(meta.get("mask_names", True)))
        try:
            store._restore(records, indexes)
        except (ValueError, RuntimeError) as exc:
            raise damaged(folder, exc) from exc
        if store.dim is not None and meta.get("dimension") not in (None, store.dim):
            raise StoreError(f"{folder}: meta.json says {meta['dimension']} dimensions, the indexes hold {store.dim}; "
                             f"{REBUILD}")
        return store

    def _restore(self, records: list[StepRecord], indexes: dict[str, Any]) -> None:
        """Install loaded records and indexes (used by `load`)."""
        self.records = records
        self._row_of = {r.id: row for row, r in enumerate(records)}
        if not records:
            return
        texts = self._key_texts(records)
        for key in KEYS:
            self._keys[key] = KeyIndex.restore(texts[key], indexes[key])
            entries = self._keys[key].entry_of
            self._entries[key] = [np.fromiter((entries[t] for t in texts[key]), dtype=np.int64, count=len(records))]
        self._add_pairs(list(range(len(records))), self._entry_array("goal"), self._entry_array("context"))
        if self._keys["goal"].kind != self._keys["context"].kind:
            raise ValueError("the goal and context indexes are of different kinds")


def _other(key: str) -> str:
    return "context" if key == "goal" else "goal"


def _check_query(k: int, goal_weight: float) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not 0.0 <= goal_weight <= 1.0:
        raise ValueError(f"goal_weight must be between 0 and 1, got {goal_weight!r}")
