"""ANN hard samples (Mine and Refine Stage 2): each seed query's nearest catalog products under the current
model, taken from a rank window, plus the cosine of every mined pair and of the query's best positive.

Embeddings go through the embedding cache (model id + text hash), so re-mining after a config change only
embeds new texts. The index is exact below 200k products; above, HNSW; ``mine.index=ivfpq`` for catalogs whose
vectors should not be held in RAM (the job then passes a disk memmap). An approximate index has its
recall@rank_max checked against exact search (read in chunks) on a sample of queries, and reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from strata.embed.index import build_index, build_ivfpq, exact_search_chunked, search, search_refined
from strata.mine.config import MineConfig

log = logging.getLogger(__name__)

Embed = Callable[[list[str], str], np.ndarray]
# Seed queries searched per FAISS call: the (queries x rank_max) hit arrays stay bounded whatever the seed count.
QUERY_BLOCK = 4096


@dataclass
class CatalogSpace:
    """One catalog's product vectors and its seed queries' vectors under one model."""

    catalog: str
    product_ids: list[str]
    product_vecs: np.ndarray
    query_texts: list[str]
    query_vecs: np.ndarray
    _prow: dict[str, int] = field(default_factory=dict)
    _qrow: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._prow = {p: i for i, p in enumerate(self.product_ids)}
        self._qrow = {q: i for i, q in enumerate(self.query_texts)}

    def with_queries(self, query_texts: list[str], query_vecs: np.ndarray) -> "CatalogSpace":
        """The same products (vectors and id map shared, not rebuilt) with another set of queries: one index
        and one product map serve every query bucket of the catalog."""
        out = object.__new__(CatalogSpace)
        out.__dict__.update(self.__dict__)
        out.query_texts, out.query_vecs = list(query_texts), query_vecs
        out._qrow = {q: i for i, q in enumerate(out.query_texts)}
        return out

    def cosine(self, queries: list[str], products: list[str]) -> np.ndarray:
        """Cosine per (query text, product id) pair; NaN where the product is not in the catalog."""
        out = np.full(len(queries), np.nan)
        rows = [(i, self._qrow.get(q), self._prow.get(p)) for i, (q, p) in enumerate(zip(queries, products))]
        ok = [(i, a, b) for i, a, b in rows if a is not None and b is not None]
        if ok:
            i, a, b = map(np.asarray, zip(*ok))
            out[i] = np.einsum("ij,ij->i", self.query_vecs[a], self.product_vecs[b])
        return out


def embed_space(catalog: str, product_ids: list[str], product_texts: list[str], query_texts: list[str],
                embed: Embed) -> CatalogSpace:
    qtexts = sorted(set(query_texts))
    return CatalogSpace(catalog, list(product_ids), embed(list(product_texts), f"{catalog} products"),
                        qtexts, embed(qtexts, f"{catalog} queries"))


def ann_search(space: CatalogSpace, index, queries: np.ndarray, k: int, cfg: MineConfig) -> np.ndarray:
    """Row ids of the top ``k`` products per query: IVF-PQ hits re-ranked exactly (``cfg.ivf_refine``), any
    other index as it answers."""
    if "IVF" in type(index).__name__ and cfg.ivf_refine > 1:
        return search_refined(index, space.product_vecs, queries, k, cfg.ivf_refine)[1]
    return search(index, queries, k)[1]


def recall_vs_exact(space: CatalogSpace, index, k: int, sample: int, seed: int,
                    cfg: MineConfig | None = None) -> float:
    """Mean share of the exact top-k found by ``index`` on ``sample`` random queries."""
    n = len(space.query_texts)
    if n == 0 or sample <= 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    pick = rng.choice(n, size=min(sample, n), replace=False)
    q = space.query_vecs[pick]
    approx = ann_search(space, index, q, k, cfg) if cfg is not None else search(index, q, k)[1]
    _, exact = exact_search_chunked(space.product_vecs, q, k)
    return float(np.mean([len((set(a) - {-1}) & set(e)) / max(len(set(e)), 1) for a, e in zip(approx, exact)]))


def catalog_index(space: CatalogSpace, cfg: MineConfig) -> tuple[object, dict]:
    """The FAISS index over the catalog's products and its stats (HNSW: recall vs exact on ``space``'s
    queries)."""
    if cfg.index == "ivfpq" and len(space.product_ids) >= 2:
        index = build_ivfpq(space.product_vecs, cfg.ivf_nlist, cfg.pq_m, cfg.nprobe, cfg.ivf_train_rows, cfg.seed)
    else:
        index = build_index(space.product_vecs, "flat" if cfg.index == "ivfpq" else cfg.index)
    kind = type(index).__name__
    stats = {"catalog": space.catalog, "index": kind, "products": len(space.product_ids)}
    if "HNSW" in kind or "IVF" in kind:
        stats["recall_at_rank_max"] = recall_vs_exact(space, index, cfg.rank_max, cfg.recall_sample, cfg.seed, cfg)
        log.info("mine %s: %s recall@%d vs exact on %d queries = %.3f", space.catalog, kind, cfg.rank_max,
                 cfg.recall_sample, stats["recall_at_rank_max"])
    return index, stats


def ann_candidates(space: CatalogSpace, seeds: pd.DataFrame, cfg: MineConfig,
                   index: object | None = None) -> tuple[pd.DataFrame, dict]:
    """Per seed query with a positive: up to ``n_ann`` products from FAISS ranks [rank_min, rank_max) that are
    not seed pairs. Returns (candidates with rank and score, index stats). ``index``: one already built over
    ``space``'s products (``catalog_index``), else built here."""
    if index is None:
        index, stats = catalog_index(space, cfg)
    else:
        stats = {"catalog": space.catalog, "index": type(index).__name__, "products": len(space.product_ids)}
    pos = seeds[seeds["grade"] >= 1]
    queries = pos.drop_duplicates("query_norm")[["source", "catalog", "query", "query_norm"]]
    known = set(zip(seeds["query_norm"], seeds["product_id"]))
    if queries.empty or cfg.n_ann == 0:
        return pd.DataFrame(columns=["source", "catalog", "query", "query_norm", "product_id", "route", "rank"]), stats
    qrow = np.asarray([space._qrow[q] for q in queries["query"]], dtype=np.int64)
    out = []
    for start, end in query_blocks(len(qrow)):
        rows = ann_search(space, index, space.query_vecs[qrow[start:end]], cfg.rank_max, cfg)
        out += _window(queries.iloc[start:end], rows, space.product_ids, known, cfg)
    return pd.DataFrame(out, columns=["source", "catalog", "query", "query_norm", "product_id", "route", "rank"]), stats


def query_blocks(n: int, size: int = QUERY_BLOCK) -> list[tuple[int, int]]:
    """[start, end) blocks of about ``size`` queries that search exactly as one call over all ``n`` would.

    Exact FAISS search scores a call of fewer than ``distance_compute_blas_threshold`` queries one query at a
    time (then any blocking gives the same result) and a larger call with BLAS, in sub-blocks of
    ``distance_compute_blas_query_bs`` queries (the float rounding depends on those shapes). So at or above the
    threshold, blocks are whole multiples of that sub-block and at least the threshold long (a short tail
    joins the previous block): every call then runs the same BLAS products as the single call."""
    from strata.embed.index import faiss

    blas_min = int(faiss.cvar.distance_compute_blas_threshold)
    if n >= blas_min:
        sub = max(1, int(faiss.cvar.distance_compute_blas_query_bs))
        size = -(-max(size, blas_min) // sub) * sub
    bounds = [(s, min(n, s + size)) for s in range(0, n, size)]
    if n >= blas_min and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < blas_min:
        (s, _), (_, e) = bounds[-2], bounds.pop()
        bounds[-1] = (s, e)
    return bounds


def _window(queries: pd.DataFrame, rows: np.ndarray, product_ids: list[str], known: set, cfg: MineConfig) -> list:
    out = []
    for (src, cat, q, qn), hits in zip(queries.itertuples(index=False, name=None), rows):
        taken = 0
        for rank in range(cfg.rank_min, min(cfg.rank_max, len(hits))):
            r = hits[rank]
            if r < 0:
                break
            pid = product_ids[r]
            if (qn, pid) in known:
                continue
            out.append((src, cat, q, qn, pid, "ann", rank))
            taken += 1
            if taken >= cfg.n_ann:
                break
    return out
