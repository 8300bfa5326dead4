"""One search key of the store: unique texts, their vectors, the records sharing each, a FAISS index."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentkd.store import faiss_index
from agentkd.store.faiss_index import IndexKind


class Rows:
    """A float32 matrix that grows by appending rows (amortised O(1) per row)."""

    def __init__(self, dim: int, data: np.ndarray | None = None) -> None:
        self.dim = dim
        self._data = np.zeros((0, dim), dtype="float32") if data is None else faiss_index.as_float32(data)
        self.n = len(self._data)

    def append(self, rows: np.ndarray) -> None:
        need = self.n + len(rows)
        if need > len(self._data):
            grown = np.zeros((max(need, 2 * len(self._data), 64), self.dim), dtype="float32")
            grown[: self.n] = self._data[: self.n]
            self._data = grown
        self._data[self.n:need] = rows
        self.n = need

    @property
    def array(self) -> np.ndarray:
        """The rows so far (a view, no copy)."""
        return self._data[: self.n]


class KeyIndex:
    """Unique texts of one key (goal or context): entry i has a vector, a FAISS row and member records."""

    def __init__(self, dim: int, kind: IndexKind) -> None:
        self.entry_of: dict[str, int] = {}
        self.members: list[list[int]] = []
        self.vectors = Rows(dim)
        self.index: Any = faiss_index.new_index(dim, kind)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def kind(self) -> IndexKind:
        return faiss_index.index_kind(self.index)

    def new_texts(self, texts: list[str]) -> list[str]:
        """The texts (in first-appearance order, once each) that have no entry yet."""
        fresh = dict.fromkeys(t for t in texts if t not in self.entry_of)
        return list(fresh)

    def add(self, texts: list[str], record_rows: list[int], vectors: dict[str, np.ndarray]) -> np.ndarray:
        """Register each record's text (new ones take their vector from `vectors`); returns entry ids."""
        fresh = self.new_texts(texts)
        if fresh:
            block = np.stack([vectors[t] for t in fresh])
            for text in fresh:
                self.entry_of[text] = len(self.members)
                self.members.append([])
            self.vectors.append(block)
            self.index.add(faiss_index.as_float32(block))
        entries = np.fromiter((self.entry_of[t] for t in texts), dtype=np.int64, count=len(texts))
        for row, entry in zip(record_rows, entries.tolist()):
            self.members[entry].append(row)
        return entries

    def rebuild(self, kind: IndexKind) -> None:
        """Rebuild the FAISS index as `kind` from the stored vectors."""
        self.index = faiss_index.build_index(self.vectors.array, kind)

    def nearest(self, query: np.ndarray, n: int) -> np.ndarray:
        """Entry ids of the n nearest texts (fewer when the key holds fewer)."""
        if not len(self):
            return np.zeros(0, dtype=np.int64)
        _, ids = faiss_index.search(self.index, query, n)
        return ids[0][ids[0] >= 0]

    @classmethod
    def restore(cls, texts: list[str], index: Any) -> KeyIndex:
        """A key rebuilt from each record's text (in record order) and its saved FAISS index."""
        key = cls(index.d, "flat")
        for row, text in enumerate(texts):
            entry = key.entry_of.get(text)
            if entry is None:
                entry = key.entry_of[text] = len(key.members)
                key.members.append([])
            key.members[entry].append(row)
        if index.ntotal != len(key.members):
            raise ValueError(f"the index holds {index.ntotal} vectors for {len(key.members)} distinct texts")
        key.index = index
        key.vectors = Rows(index.d, faiss_index.all_vectors(index))
        return key
