"""The dense retriever every stage embeds with: a bi-encoder (sentence-transformers) over a FAISS
inner-product index, embedding through the cache and Ray Data (``embed_texts``) when configured.

The embed stage, mining and evaluation all use this one class, so a catalog is embedded the same way
whichever stage asks. Documents are indexed in doc-id order; equal scores are broken by doc id (lower first),
so a run is the same on every machine and every call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strata.embed.config import EmbedConfig
from strata.embed.encoder import BASELINE, encode, load_encoder, model_id, resolve_backend, resolve_model
from strata.embed.index import build_index, search
from strata.embed.ray_embed import embed_texts


def by_doc_id(doc_ids: list[str], doc_texts: list[str]) -> tuple[list[str], list[str]]:
    """Documents sorted by id, so "lower row" means "lower doc id" when breaking ties."""
    if len(doc_ids) != len(doc_texts):
        raise ValueError(f"{len(doc_ids)} doc ids but {len(doc_texts)} texts")
    if len(set(doc_ids)) != len(doc_ids):
        raise ValueError("doc ids must be unique")
    order = sorted(range(len(doc_ids)), key=doc_ids.__getitem__)
    return [doc_ids[i] for i in order], [doc_texts[i] for i in order]


class DenseRetriever:
    """A bi-encoder over a FAISS inner-product index; embeds with Ray Data when ``engines`` is given and a
    call has at least ``embed_cfg.ray_min_texts`` texts (smaller calls embed in-process: same vectors)."""

    def __init__(
        self, model: str, embed_cfg: EmbedConfig, engines: Any = None, name: str | None = None
    ) -> None:
        if model != BASELINE:
            model = resolve_model(model)  # fail now, with the path in the message, not inside Ray
        self.name = name or model
        # `auto` is decided here, once, so the cache id and every actor use the same engine
        backend = resolve_backend(embed_cfg.backend, "cuda" if embed_cfg.actor_gpus > 0 else "cpu")
        self.cfg = embed_cfg.model_copy(update={"model": model, "backend": backend})
        self.engines = engines
        self._encoder: Any = None
        self._index: Any = None
        self._doc_ids: list[str] = []
        self._model_id: str | None = None
        self._cache: Any = None

    @property
    def model_id(self) -> str:
        if self._model_id is None:  # a hash over the weight files: computed once
            self._model_id = model_id(self.cfg.model)
            if self.cfg.backend != "torch":  # another engine's vectors differ a little: cached apart
                self._model_id += f"+{self.cfg.backend}"
        return self._model_id

    def embed(self, texts: list[str], desc: str) -> np.ndarray:
        """Vectors for texts: from the cache (model id + text hash) when configured, else computed.

        The cache is opened once per retriever, so a catalog embedded in many steps reads its shards once."""
        if self.cfg.cache_dir:
            from strata.embed.cache import EmbeddingCache

            if self._cache is None:
                self._cache = EmbeddingCache(self.cfg.cache_dir, self.model_id, self.cfg.max_seq_length)
            return self._cache.embed(texts, lambda todo: self._compute(todo, desc))
        return self._compute(texts, desc)

    def _compute(self, texts: list[str], desc: str) -> np.ndarray:
        if self.engines is not None and len(texts) >= self.cfg.ray_min_texts:
            return embed_texts(self.engines, texts, self.cfg, desc=f"{self.name}: {desc}")
        if self._encoder is None:  # local: load once, reuse for corpus and queries
            self._encoder = load_encoder(self.cfg.model, max_seq_length=self.cfg.max_seq_length,
                                         backend=self.cfg.backend)
        return encode(self._encoder, texts, batch_size=self.cfg.batch_size)

    def index(self, doc_ids: list[str], doc_texts: list[str]) -> None:
        self._doc_ids, doc_texts = by_doc_id(doc_ids, doc_texts)
        self._index = build_index(self.embed(doc_texts, "corpus"))

    def search(self, queries: dict[str, str], k: int) -> dict[str, dict[str, float]]:
        if self._index is None:
            raise RuntimeError(f"{self.name}: index() must be called before search()")
        qids = list(queries)
        if not qids:
            return {}
        qvec = self.embed([queries[q] for q in qids], "queries")
        self.query_vectors = dict(zip(qids, qvec))  # kept for score separation: no re-embedding
        scores, rows = search(self._index, qvec, k)
        run: dict[str, dict[str, float]] = {}
        for qid, s_row, r_row in zip(qids, scores, rows):
            keep = r_row >= 0
            s_row, r_row = s_row[keep], r_row[keep]
            order = np.lexsort((r_row, -s_row))  # faiss leaves tie order unspecified
            run[qid] = {self._doc_ids[r]: float(s) for r, s in zip(r_row[order], s_row[order])}
        return run
