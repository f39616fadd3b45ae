"""Category enrichment for catalogs without categories (Home Depot): product title -> Google taxonomy path.

Each taxonomy category is embedded as its full path ("Home & Garden > Kitchen & Dining > ... > Microwave
Ovens"), each product as its title, with the packaged MiniLM (``strata.embed``: the run's embedding backend and
cache, so a run on a fresh lakehouse re-embeds no title the cache has seen); the nearest path by
cosine (FAISS inner product over L2-normalised vectors) is the candidate. ``confidence`` = that cosine,
``margin`` = its lead over the second-best path. A candidate is assigned only when confidence >=
``threshold`` and margin >= ``min_margin``; otherwise ``category_id`` stays NULL with status
``low_confidence`` and the reason, and the candidate is kept for inspection: never a silent guess.

Incremental: products already in ``product_categories`` with the same model and thresholds are skipped
(``refresh=True`` recomputes all). Rows are MERGEd on (source, product_id).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from strata.tables import Lakehouse

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.45
DEFAULT_MIN_MARGIN = 0.0


@dataclass(frozen=True)
class EnrichConfig:
    source: str = "homedepot"
    taxonomy_source: str = "google"
    threshold: float = DEFAULT_THRESHOLD
    min_margin: float = DEFAULT_MIN_MARGIN
    model: str = "baseline"
    backend: str = "torch"  # an embed backend (``strata.embed.encoder.BACKENDS``); ``auto`` resolves per machine
    cache_dir: str | None = None  # the embedding cache (model id + backend + text hash); None = embed every title
    batch_size: int = 256
    chunk_size: int = 2000  # products embedded and upserted per step
    refresh: bool = False
    limit: int | None = None


MAX_SEQ_LENGTH = 64


def retriever(cfg: EnrichConfig):
    """The embedder: a :class:`~strata.embed.retriever.DenseRetriever` in this process (its ``auto`` backend
    resolved once, its cache keyed by model id + backend), so titles embed as every other stage embeds."""
    from strata.embed.config import EmbedConfig
    from strata.embed.retriever import DenseRetriever

    return DenseRetriever(cfg.model, EmbedConfig(model=cfg.model, backend=cfg.backend, cache_dir=cfg.cache_dir,
                                                 batch_size=cfg.batch_size, max_seq_length=MAX_SEQ_LENGTH),
                          name="enrich")


def prepare(paths: list[tuple[str, str]], cfg: EnrichConfig, encoder=None, embedder=None) -> tuple:
    """An embed function (texts -> vectors), a FAISS index over the embedded category paths, and their ids
    (built once per run). ``encoder``: a ready sentence-transformers model instead of ``cfg``'s; ``embedder``: the
    caller's :func:`retriever` (built once: its model id hashes the weights)."""
    from strata.embed.encoder import encode
    from strata.embed.index import build_index

    if encoder is not None:
        def embed(texts: list[str]) -> np.ndarray:
            return encode(encoder, texts, batch_size=cfg.batch_size)
    else:
        r = embedder if embedder is not None else retriever(cfg)

        def embed(texts: list[str]) -> np.ndarray:
            return r.embed(texts, "titles")
    index = build_index(embed([p for _, p in paths]), kind="flat")
    return embed, index, np.array([c for c, _ in paths], dtype=object)


def assign(titles: list[str], paths: list[tuple[str, str]] | None, cfg: EnrichConfig, encoder=None,
           prepared: tuple | None = None) -> pd.DataFrame:
    """Titles x (category_id, path text) -> candidate_id, confidence, margin, category_id, status, reason."""
    from strata.embed.index import search

    embed, index, ids = prepared if prepared is not None else prepare(paths or [], cfg, encoder)
    vecs = embed(titles)
    scores, rows = search(index, vecs, 2)
    top = scores[:, 0].astype(float)
    second = scores[:, 1].astype(float) if scores.shape[1] > 1 else np.full(len(titles), -1.0)
    margin = top - second
    ok = (top >= cfg.threshold) & (margin >= cfg.min_margin)
    reason = np.where(
        ok, None,
        np.where(top < cfg.threshold, [f"confidence {t:.3f} < threshold {cfg.threshold}" for t in top],
                 [f"margin {m:.3f} < min_margin {cfg.min_margin}" for m in margin]),
    )
    return pd.DataFrame({
        "candidate_id": ids[rows[:, 0]],
        "confidence": np.round(top, 6),
        "margin": np.round(margin, 6),
        "category_id": np.where(ok, ids[rows[:, 0]], None),
        "status": np.where(ok, "assigned", "low_confidence"),
        "reason": reason,
    })


def _todo_chunks(spark: "SparkSession", lakehouse: Lakehouse, cfg: EnrichConfig, tag: str) -> Iterator[pd.DataFrame]:
    """(product_id, title) of the ``cfg.source`` products without a category and not yet assigned with ``tag``,
    ``cfg.chunk_size`` at a time. Streamed from the table (only the done ids are held, to skip them); with
    ``cfg.limit``, the first ``limit`` by product_id through Spark (at most ``limit`` rows collected)."""
    import pyarrow.compute as pc

    done: set[str] = set()
    if not cfg.refresh and lakehouse.exists("product_categories"):
        mine = ((pc.field("source") == cfg.source) & (pc.field("taxonomy_source") == cfg.taxonomy_source)
                & (pc.field("model") == tag))
        for b in lakehouse.scan_batches("product_categories", ["product_id"], filter=mine):
            done.update(b.column("product_id").to_pylist())
    if cfg.limit:
        products = lakehouse.read(spark, "products").where(
            f"source = '{cfg.source}' AND category_id IS NULL").select("product_id", "title")
        if done:
            products = products.join(spark.createDataFrame(pd.DataFrame({"product_id": sorted(done)}),
                                                           schema="product_id string"),
                                     on="product_id", how="left_anti")
        todo = products.orderBy("product_id").limit(cfg.limit).toPandas()
        for start in range(0, len(todo), cfg.chunk_size):
            yield todo.iloc[start:start + cfg.chunk_size].reset_index(drop=True)
        return
    want = (pc.field("source") == cfg.source) & pc.field("category_id").is_null()
    ids: list[str] = []
    titles: list[str | None] = []
    for b in lakehouse.scan_batches("products", ["product_id", "title"], filter=want):
        for pid, title in zip(b.column("product_id").to_pylist(), b.column("title").to_pylist()):
            if pid in done:
                continue
            ids.append(pid)
            titles.append(title)
            if len(ids) >= cfg.chunk_size:
                yield pd.DataFrame({"product_id": ids, "title": titles})
                ids, titles = [], []
    if ids:
        yield pd.DataFrame({"product_id": ids, "title": titles})


def enrich_categories(spark: "SparkSession", lakehouse: Lakehouse, run_id: str, cfg: EnrichConfig = EnrichConfig(),
                      encoder=None) -> dict:
    """Assign taxonomy categories to ``cfg.source`` products that have none; returns the run's counts."""
    from strata.features.job import MissingInputError
    from strata.ingest.runlog import log_counts
    from strata.ingest.upsert import upsert

    t0 = time.perf_counter()
    for need in ("products", "taxonomy"):
        if not lakehouse.exists(need):
            raise MissingInputError(f"enrich: required table {need!r} not found at {lakehouse.path(need)}")
    # the model id names the backend too (``+torch-bf16``): its vectors differ a little, so its assignments are
    # tagged apart and a backend change re-enriches
    embedder = retriever(cfg) if encoder is None else None
    mid = embedder.model_id if embedder is not None else getattr(encoder, "strata_model_id", "custom")
    tag = f"{mid};threshold={cfg.threshold};min_margin={cfg.min_margin}"
    taxonomy = lakehouse.read(spark, "taxonomy").where(f"source = '{cfg.taxonomy_source}'").select(
        "category_id", "path").orderBy("category_id").toPandas()
    if taxonomy.empty:
        raise MissingInputError(f"enrich: taxonomy {cfg.taxonomy_source!r} is empty; ingest it first")
    paths = [(c, " > ".join(p)) for c, p in zip(taxonomy["category_id"], taxonomy["path"])]
    prepared = None
    read = upserted = assigned = 0
    # Chunks are upserted as they are done: progress survives an interruption (done products are skipped next
    # run), the Spark session never sits idle for the whole embedding time, and only one chunk of titles is in
    # memory (see _todo_chunks).
    for todo in _todo_chunks(spark, lakehouse, cfg, tag):
        read += len(todo)
        blank = todo["title"].fillna("").str.strip() == ""
        good = todo[~blank].reset_index(drop=True)
        if len(good):
            if prepared is None:
                prepared = prepare(paths, cfg, encoder, embedder)
            got = assign(good["title"].tolist(), None, cfg, prepared=prepared)
            part = pd.concat([good[["product_id"]], got], axis=1)
            part["source"], part["taxonomy_source"], part["model"] = cfg.source, cfg.taxonomy_source, tag
            upsert(spark, lakehouse, "product_categories", part)
            upserted += len(part)
            assigned += int((part["status"] == "assigned").sum())
        if blank.any():
            extra = pd.DataFrame({"product_id": todo.loc[blank, "product_id"].tolist()})
            for col, value in (("candidate_id", None), ("confidence", float("nan")), ("margin", float("nan")),
                               ("category_id", None), ("status", "no_text"), ("reason", "product has no title")):
                extra[col] = pd.Series([value] * len(extra), dtype="float64" if col in ("confidence", "margin")
                                       else "object")
            extra["source"], extra["taxonomy_source"], extra["model"] = cfg.source, cfg.taxonomy_source, tag
            upsert(spark, lakehouse, "product_categories", extra)
            upserted += len(extra)
        log.info("enrich: %d products", read)
    counts = {
        "source": cfg.source, "target_table": "product_categories", "read": read, "accepted": read,
        "quarantined": 0, "upserted": upserted, "seconds": round(time.perf_counter() - t0, 3),
        "assigned": assigned, "unassigned": read - assigned,
    }
    log_counts(spark, lakehouse, run_id, "enrich-categories", [counts],
               detail=f"{tag}; assigned {assigned} of {read}")
    log.info("enrich: %d products, %d assigned (threshold %.2f)", read, assigned, cfg.threshold)
    return counts


def uncategorised_sources(lakehouse: Lakehouse, exclude: tuple[str, ...] = ()) -> list[str]:
    """Product namespaces none of whose products has a category (Home Depot): the catalogs enrichment is for.
    A catalog with its own taxonomy (Best Buy), even with some products uncategorised, keeps its own."""
    import pyarrow.compute as pc

    seen: set[str] = set()
    categorised: set[str] = set()
    for b in lakehouse.scan_batches("products", ["source", "category_id"]):
        src = b.column("source")
        seen.update(x for x in pc.unique(src).to_pylist() if x is not None)
        has = pc.is_valid(b.column("category_id"))
        categorised.update(x for x in pc.unique(pc.filter(src, has)).to_pylist() if x is not None)
    return sorted(seen - categorised - set(exclude))


def enrich_uncategorised(spark: "SparkSession", lakehouse: Lakehouse, run_id: str, taxonomy_source: str = "google",
                         limit: int | None = None, backend: str = "torch",
                         cache_dir: str | None = None) -> list[dict]:
    """:func:`enrich_categories` for every :func:`uncategorised_sources` catalog, from ``taxonomy_source``;
    the per-catalog counts. Incremental like it: a second run embeds only the products not yet assigned."""
    return [enrich_categories(spark, lakehouse, run_id,
                              EnrichConfig(source=s, taxonomy_source=taxonomy_source, limit=limit, backend=backend,
                                           cache_dir=cache_dir))
            for s in uncategorised_sources(lakehouse, exclude=(taxonomy_source,))]
