"""Retrievers compared in evaluation: BM25 (bm25s) and dense bi-encoders (sentence-transformers + FAISS,
``strata.embed.retriever.DenseRetriever``).

All of them index documents in doc-id order and return ``{qid: {doc_id: score}}``; equal scores are
broken by doc id (lower first), so a run is the same on every machine and every call.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from strata.embed.config import EmbedConfig
from strata.embed.retriever import DenseRetriever, by_doc_id

log = logging.getLogger(__name__)

BM25 = "bm25"


class Retriever(Protocol):
    """What evaluation needs. Implementations may also expose ``model_id`` (recorded in results)."""

    name: str

    def index(self, doc_ids: list[str], doc_texts: list[str]) -> None: ...

    def search(self, queries: dict[str, str], k: int) -> dict[str, dict[str, float]]: ...


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` best positive scores, best first, ties to the lower row."""
    rows = np.flatnonzero(scores > 0)
    if len(rows) > k:
        kth = np.partition(scores[rows], len(rows) - k)[len(rows) - k]
        rows = rows[scores[rows] >= kth]  # keeps every row tied at the cut-off
    return rows[np.lexsort((rows, -scores[rows]))][:k]


class BM25Retriever:
    """Lexical baseline: bm25s (Lucene BM25, k1=1.5, b=0.75), lower-cased, English stopwords removed.

    Documents scoring 0 (no query term in common) are not returned: their order would be arbitrary.
    """

    def __init__(self, name: str = BM25) -> None:
        import bm25s

        self.name = name
        self.model_id = f"bm25s@{bm25s.__version__}"
        self._bm25: Any = None
        self._doc_ids: list[str] = []

    @staticmethod
    def _tokenize(texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(
            texts, lower=True, stopwords="en", return_ids=False, show_progress=False
        )

    def index(self, doc_ids: list[str], doc_texts: list[str]) -> None:
        import bm25s

        self._doc_ids, doc_texts = by_doc_id(doc_ids, doc_texts)
        self._bm25 = bm25s.BM25()
        self._bm25.index(self._tokenize(doc_texts), show_progress=False)

    def search(self, queries: dict[str, str], k: int) -> dict[str, dict[str, float]]:
        if self._bm25 is None:
            raise RuntimeError(f"{self.name}: index() must be called before search()")
        qids = list(queries)
        run: dict[str, dict[str, float]] = {}
        for qid, tokens in zip(qids, self._tokenize([queries[q] for q in qids])):
            ids = self._bm25.get_tokens_ids(tokens)
            if not ids:
                run[qid] = {}
                continue
            scores = self._bm25.get_scores_from_ids(ids)
            run[qid] = {self._doc_ids[r]: float(scores[r]) for r in top_rows(scores, k)}
        return run


def make_retriever(name: str, embed_cfg: EmbedConfig, engines: Any = None) -> Retriever:
    """``"bm25"``, ``"baseline"`` (packaged MiniLM) or a local model dir."""
    if name == BM25:
        return BM25Retriever()
    return DenseRetriever(name, embed_cfg, engines, name=name)
