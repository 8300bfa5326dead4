"""Embedders reached through litellm (any provider's embedding model)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from agentkd.errors import ModelError


class LiteLLMEmbedder:
    """`litellm.embedding` in batches; unit-normalised float32 vectors. `name` is the model string."""

    def __init__(self, model: str, batch_size: int = 64, api_base: str | None = None) -> None:
        self.name = model
        self.batch_size = batch_size
        self.api_base = api_base

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            try:
                response = litellm.embedding(model=self.name, input=list(texts[start:start + self.batch_size]),
                                             api_base=self.api_base)
            except Exception as exc:  # surface provider errors as one clear error
                raise ModelError(f"embedding model {self.name!r} failed: {exc}") from exc
            rows.extend(item["embedding"] for item in response.data)
        vectors = np.asarray(rows, dtype="float32")
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
