"""FAISS demonstration store: teacher steps searched by goal and current state (two keys)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from agentkd import __version__
from agentkd.demos.records import StepRecord, records_from_trajectory
from agentkd.errors import AgentKDError
from agentkd.records import Trajectory

RECORDS_FILE = "records.jsonl"
META_FILE = "meta.json"
KEYS = ("goal", "context")
# Capitalised words not at a sentence start: names of people, places, organisations...
_PROPER_NOUNS = re.compile(r"(?<!^)(?<![.?!:] )\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)*")


def mask_entities(text: str) -> str:
    """Replace proper nouns with X so goals match by the task's shape, not by the entities in it."""
    return _PROPER_NOUNS.sub("X", text)


class StoreError(AgentKDError):
    """A demonstration store is missing or unreadable."""


class StoreMismatchError(StoreError):
    """A store was built with another embedder than the one asked for."""


def _new_index(dim: int, hnsw: bool) -> Any:
    import faiss

    if not hnsw:
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.hnsw.efSearch = 96
    return index


class DemoStore:
    """Teacher steps with unit-normalised goal and context vectors in FAISS indexes.

    Goals are embedded with proper nouns masked (`mask_goal_entities`), so a new question
    finds steps of questions with the same shape rather than steps that share a name.
    A flat (exact) index below `hnsw_threshold` records, HNSW at or above it. Records can be
    added at any time (`add_trajectories`, `add_records`).
    """

    def __init__(self, embedder: Any = None, hnsw_threshold: int = 50_000, window: int = 1,
                 mask_goal_entities: bool = True) -> None:
        if embedder is None:
            from agentkd.models.embeddings import default_embedder

            embedder = default_embedder()
        self.embedder = embedder
        self.hnsw_threshold = hnsw_threshold
        self.window = window
        self.mask_goal_entities = mask_goal_entities
        self.records: list[StepRecord] = []
        self.vectors: dict[str, np.ndarray] = {}
        self.indexes: dict[str, Any] = {}

    # building -----------------------------------------------------------------------
    @classmethod
    def build(cls, trajectories: Iterable[Trajectory], embedder: Any = None, window: int = 1,
              hnsw_threshold: int = 50_000, only_successful: bool = True) -> DemoStore:
        """A store of every teacher step of the (successful) trajectories."""
        store = cls(embedder, hnsw_threshold=hnsw_threshold, window=window)
        store.add_trajectories(trajectories, only_successful=only_successful)
        return store

    def add_trajectories(self, trajectories: Iterable[Trajectory], only_successful: bool = True) -> int:
        """Add the teacher steps of trajectories not in the store yet. Returns the records added."""
        seen = {(r.task_id, r.sample_index) for r in self.records}
        records = [
            rec
            for traj in trajectories
            if (traj.success or not only_successful) and traj.key not in seen
            for rec in records_from_trajectory(traj, self.window)
        ]
        self.add_records(records)
        return len(records)

    def add_records(self, records: Sequence[StepRecord]) -> None:
        """Embed and index records (goal texts are embedded once each)."""
        if not records:
            return
        goals = sorted({r.goal for r in records})
        goal_vectors = dict(zip(goals, self._embed([self._goal_text(g) for g in goals])))
        new = {"goal": np.stack([goal_vectors[r.goal] for r in records]),
               "context": self._embed([r.context or r.goal for r in records])}
        self.records.extend(records)
        for key in KEYS:
            self.vectors[key] = np.concatenate([self.vectors[key], new[key]]) if key in self.vectors else new[key]
        rebuild = not self.indexes or (len(self) >= self.hnsw_threshold and self.kind == "flat")
        for key in KEYS:
            if rebuild:
                self.indexes[key] = _new_index(self.dim, len(self) >= self.hnsw_threshold)
                self.indexes[key].add(self.vectors[key])
            else:
                self.indexes[key].add(new[key])

    def _goal_text(self, goal: str) -> str:
        return mask_entities(goal) if self.mask_goal_entities else goal

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.ascontiguousarray(self.embedder.embed(list(texts)), dtype="float32")

    # searching ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def dim(self) -> int:
        return int(self.vectors["goal"].shape[1])

    @property
    def kind(self) -> str:
        return "hnsw" if self.indexes and type(self.indexes["goal"]).__name__ == "IndexHNSWFlat" else "flat"

    def search(self, goal: str, context: str, k: int = 4, goal_weight: float = 0.5) -> list[tuple[StepRecord, float]]:
        """Top-k records by goal_weight * cos(goal) + (1 - goal_weight) * cos(context)."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if not self.records:
            return []
        query = self._embed([self._goal_text(goal), context or goal])
        return self.search_vectors(query[0], query[1], k, goal_weight)

    def search_vectors(self, goal: np.ndarray, context: np.ndarray, k: int, goal_weight: float = 0.5
                       ) -> list[tuple[StepRecord, float]]:
        """`search` with query vectors already embedded."""
        fetch = min(len(self), max(32, 8 * k))
        candidates: set[int] = set()
        for key, vec in (("goal", goal), ("context", context)):
            _, ids = self.indexes[key].search(vec.reshape(1, -1), fetch)
            candidates.update(int(i) for i in ids[0] if i >= 0)
        ids = np.fromiter(candidates, dtype=np.int64)
        scores = goal_weight * (self.vectors["goal"][ids] @ goal) + (1 - goal_weight) * (self.vectors["context"][ids] @ context)
        order = np.argsort(-scores)[:k]
        return [(self.records[int(ids[i])], float(scores[i])) for i in order]

    # persistence ----------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        return {"embedder": self.embedder.name, "dimension": self.dim if self.records else None, "count": len(self),
                "index": self.kind, "window": self.window, "hnsw_threshold": self.hnsw_threshold,
                "mask_goal_entities": self.mask_goal_entities,
                "agentkd": __version__}

    def save(self, path: str | Path) -> None:
        """Write records, vectors and meta.json to `path` (a folder)."""
        import faiss

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / RECORDS_FILE, "w", encoding="utf-8") as handle:
            for record in self.records:
                handle.write(record.model_dump_json() + "\n")
        for key in KEYS:
            if key in self.vectors:
                np.save(folder / f"{key}.npy", self.vectors[key])
                faiss.write_index(self.indexes[key], str(folder / f"{key}.faiss"))
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2))

    @classmethod
    def load(cls, path: str | Path, embedder: Any = None) -> DemoStore:
        """Read a saved store; refuses one built with a different embedder."""
        import faiss

        folder = Path(path)
        if not (folder / META_FILE).is_file():
            raise StoreError(f"no demonstration store in {folder}; build one with `agentkd index --run RUN`")
        try:
            meta = json.loads((folder / META_FILE).read_text())
            store = cls(embedder, hnsw_threshold=int(meta["hnsw_threshold"]), window=int(meta["window"]),
                        mask_goal_entities=bool(meta.get("mask_goal_entities", True)))
            if meta["embedder"] != store.embedder.name:
                raise StoreMismatchError(
                    f"the store in {folder} was built with the embedder {meta['embedder']!r}, not "
                    f"{store.embedder.name!r}; rebuild it with `agentkd index --run RUN --rebuild`"
                )
            with open(folder / RECORDS_FILE, encoding="utf-8") as handle:
                store.records = [StepRecord.model_validate_json(line) for line in handle if line.strip()]
            if store.records:
                for key in KEYS:
                    store.vectors[key] = np.load(folder / f"{key}.npy")
                    store.indexes[key] = faiss.read_index(str(folder / f"{key}.faiss"))
                    if hasattr(store.indexes[key], "hnsw"):
                        store.indexes[key].hnsw.efSearch = 96
                    if store.indexes[key].ntotal != len(store.records):
                        raise StoreError(f"{folder}: {key} index holds {store.indexes[key].ntotal} vectors "
                                         f"for {len(store.records)} records; rebuild it")
        except StoreError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise StoreError(f"the demonstration store in {folder} is unreadable ({exc}); rebuild it") from exc
        return store
