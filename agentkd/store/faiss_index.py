"""FAISS index helpers: exact inner product (flat) or HNSW, over unit-normalised float32 vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

IndexKind = Literal["flat", "hnsw"]

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
"""Tuned with benchmarks/bench_store.py: recall@6 of one 62k-vector index 0.92 at 64, 0.999 at 128 (+0.07 ms)."""


def _faiss() -> Any:
    import faiss

    return faiss


def new_index(dim: int, kind: IndexKind) -> Any:
    """An empty IndexFlatIP, or IndexHNSWFlat(dim, 32, inner product) tuned for recall."""
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


def build_index(vectors: np.ndarray, kind: IndexKind) -> Any:
    """A new index of `kind` holding `vectors` (n x dim)."""
    index = new_index(vectors.shape[1], kind)
    if len(vectors):
        index.add(as_float32(vectors))
    return index


def index_kind(index: Any) -> IndexKind:
    """'hnsw' for an HNSW index, else 'flat'."""
    return "hnsw" if hasattr(index, "hnsw") else "flat"


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k nearest rows per query; ids are -1 where fewer than k exist."""
    k = max(1, min(k, index.ntotal))
    return index.search(as_float32(np.atleast_2d(queries)), k)


def all_vectors(index: Any) -> np.ndarray:
    """Every vector stored in a flat or HNSW-flat index, in id order (n x dim float32)."""
    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype="float32")
    return np.ascontiguousarray(index.reconstruct_n(0, index.ntotal), dtype="float32")


def write(index: Any, path: Path) -> None:
    _faiss().write_index(index, str(path))


def read(path: Path) -> Any:
    """Read an index; HNSW indexes get the default efSearch back."""
    index = _faiss().read_index(str(path))
    if index_kind(index) == "hnsw":
        index.hnsw.efSearch = max(index.hnsw.efSearch, HNSW_EF_SEARCH)
    return index


def as_float32(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype="float32")


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    vectors = np.asarray(vectors, dtype="float32")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return as_float32(vectors / np.maximum(norms, 1e-12))
