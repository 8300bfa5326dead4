"""Retrieval over a text corpus: BM25 (default, no model) or dense FAISS + MiniLM, one interface."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence

if TYPE_CHECKING:
    from agentkd.models.embeddings import Embedder

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens."""
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class Document:
    """One retrievable text with a title."""

    id: str
    title: str
    text: str

    def render(self) -> str:
        return f"[{self.title}] {self.text}"


@dataclass(frozen=True)
class Hit:
    document: Document
    score: float


class Retriever(Protocol):
    """Anything that returns the k most relevant documents for a query."""

    def search(self, query: str, k: int = 3) -> list[Hit]: ...


class BM25Retriever:
    """Okapi BM25 over titles + texts. Exact, dependency-free, fast for corpora up to ~1e5 docs."""

    def __init__(self, documents: Sequence[Document], k1: float = 1.5, b: float = 0.75) -> None:
        if not documents:
            raise ValueError("BM25Retriever needs at least one document")
        self.documents = list(documents)
        self.k1, self.b = k1, b
        self._tf = [Counter(tokenize(f"{d.title} {d.text}")) for d in self.documents]
        self._len = [sum(tf.values()) for tf in self._tf]
        self._avg = sum(self._len) / len(self._len)
        df: Counter[str] = Counter()
        for tf in self._tf:
            df.update(tf.keys())
        n = len(self.documents)
        self._idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self._postings: dict[str, list[int]] = {}
        for i, tf in enumerate(self._tf):
            for t in tf:
                self._postings.setdefault(t, []).append(i)

    def search(self, query: str, k: int = 3) -> list[Hit]:
        scores: dict[int, float] = {}
        for term in set(tokenize(query)):
            idf = self._idf.get(term)
            if idf is None:
                continue
            for i in self._postings[term]:
                f = self._tf[i][term]
                norm = f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * self._len[i] / self._avg))
                scores[i] = scores.get(i, 0.0) + idf * norm
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [Hit(self.documents[i], s) for i, s in best]


class DenseRetriever:
    """Cosine similarity over sentence embeddings in a FAISS inner-product index."""

    def __init__(self, documents: Sequence[Document], embedder: "Embedder | None" = None) -> None:
        import faiss
        import numpy as np

        from agentkd.models.embeddings import default_embedder

        if not documents:
            raise ValueError("DenseRetriever needs at least one document")
        self.documents = list(documents)
        self.embedder: Embedder = embedder or default_embedder()
        vectors = self.embedder.embed([f"{d.title}. {d.text}" for d in self.documents])
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(np.ascontiguousarray(vectors, dtype="float32"))

    def search(self, query: str, k: int = 3) -> list[Hit]:
        import numpy as np

        q = np.ascontiguousarray(self.embedder.embed([query]), dtype="float32")
        scores, ids = self.index.search(q, min(k, len(self.documents)))
        return [Hit(self.documents[i], float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]


def format_hits(hits: Sequence[Hit]) -> str:
    """Render hits as the text a search tool returns to the agent."""
    if not hits:
        return "No results."
    return "\n".join(f"{n}. {h.document.render()}" for n, h in enumerate(hits, 1))
