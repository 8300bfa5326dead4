"""Embedders reached through litellm: any provider's embedding model."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from agentkd.errors import ModelError
from agentkd.store.faiss_index import normalise


class LiteLLMEmbedder:
    """`litellm.embedding(model=..., input=[...])` in batches; unit-normalised float32 rows. `name` is the model."""

    def __init__(self, model: str, batch_size: int = 64, **kwargs: Any) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = model
        self.batch_size = batch_size
        self.kwargs = kwargs
        """Extra arguments for litellm.embedding (api_base, api_key, dimensions...)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start:start + self.batch_size])
            try:
                response = litellm.embedding(model=self.name, input=batch, **self.kwargs)
            except Exception as exc:  # provider errors of every kind become one clear error
                raise ModelError(f"embedding model {self.name!r} failed: {exc}") from exc
            data = sorted(response.data, key=lambda item: _field(item, "index", 0))
            if len(data) != len(batch):
                raise ModelError(f"embedding model {self.name!r} returned {len(data)} vectors for {len(batch)} texts")
            rows.extend(_field(item, "embedding", None) for item in data)
        if not rows:
            return np.zeros((0, 0), dtype="float32")
        return normalise(np.asarray(rows, dtype="float32"))


def _field(item: Any, name: str, default: Any) -> Any:
    return item.get(name, default) if isinstance(item, dict) else getattr(item, name, default)
