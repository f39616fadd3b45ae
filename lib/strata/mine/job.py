"""The mining job: seeds -> structured + ANN candidates -> false-negative guard -> ``training_examples``.

Spark does the joins over the lakehouse (seeds, taxonomy/attribute candidates, the judged candidates' verdicts)
and stages the candidates with their product text as parquet for the judging job, so candidate text never
passes through the driver. The driver holds one catalog's product ids and vectors at a time for FAISS, its
products streaming through the embedder ``embed.stream_rows`` at a time (never the catalog's text). What the
driver collects grows with the seeds, not the catalog: the seed pairs (``max_queries`` applied in Spark first),
the structured candidates (capped per query) and the ANN hits (searched in blocks of queries), as keys and
scores. The table is rewritten whole (overwrite), rows sorted by key, so mining twice with the same inputs and
seed gives the same table, and a killed run leaves the previous version in place (Delta commits atomically).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strata.config import EmbedConfig, SplitConfig
from strata.embed.stage import catalog_vectors
from strata.mine.ann import CatalogSpace, ann_candidates
from strata.mine.config import ROUTES, MineConfig
from strata.mine.guard import apply_judgments, margin_rule
from strata.mine.seeds import seed_examples
from strata.mine.structured import structured_candidates
from strata.tables import Lakehouse, spec
from strata.text import query_bucket

log = logging.getLogger(__name__)

# Order in which a query's examples survive the per-query cap.
SOURCE_PRIORITY = ("human", "engagement", "judge", *ROUTES)


@dataclass
class MineResult:
    rows: int
    by_source: dict[str, int]
    removed: dict[str, int]
    index: list[dict]
    judge: dict[str, Any] | None
    model_id: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    table_version: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def _feature_views(spark: Any, lakehouse: Lakehouse) -> None:
    from strata.features.job import _view

    _view(lakehouse, spark, "products", required=True)
    for name in ("product_features", "taxonomy_neighbours", "query_attributes"):
        if not _view(lakehouse, spark, name, required=False):
            log.warning("mine: no %s table (run strata features): structured routes using it yield nothing", name)


def _seed_frame(spark: Any, seeds: Any, cfg: MineConfig) -> pd.DataFrame:
    """The seed pairs of the chosen catalogs and (``max_queries``) queries, filtered in Spark: only the
    distinct (catalog, query) keys come to the driver to be hash-ordered, then the kept queries' pairs."""
    if cfg.catalogs:
        seeds = seeds.where(seeds["catalog"].isin(list(cfg.catalogs)))
    if cfg.max_queries:
        keys = seeds.select("catalog", "query_norm").distinct().toPandas()
        keep = []
        for catalog, grp in keys.groupby("catalog", sort=True):
            qs = sorted(grp["query_norm"], key=lambda q: query_bucket(q, f"mine-{cfg.seed}"))
            keep += [(catalog, q) for q in qs[: cfg.max_queries]]
        kept = spark.createDataFrame(pd.DataFrame(keep, columns=["catalog", "query_norm"]),
                                     schema="catalog string, query_norm string")
        seeds = seeds.join(kept, on=["catalog", "query_norm"], how="left_semi")
    return seeds.toPandas()


def _stage_for_judge(spark: Any, cands: pd.DataFrame, out: Path) -> Path:
    """The candidate pairs with their product's title and description, joined and written by Spark as parquet
    under ``out`` for the judging job (``run_judging`` on a path): the candidates' text never reaches the
    driver. A candidate whose product is missing keeps its row with an empty text."""
    cols = [c for c in ("source", "catalog", "query", "query_norm", "product_id") if c in cands.columns]
    keys = spark.createDataFrame(cands[cols].astype(str), schema=", ".join(f"{c} string" for c in cols))
    keys.createOrReplaceTempView("mine_judge_keys")
    spark.sql("""
        SELECT k.*, p.title, p.description FROM mine_judge_keys k
        LEFT JOIN in_products p ON p.source = k.catalog AND p.product_id = k.product_id
    """).write.mode("overwrite").parquet(str(out))
    return out


def _judgments_for(spark: Any, lakehouse: Lakehouse, cands: pd.DataFrame, judge_id: str) -> pd.DataFrame:
    """This judge's verdicts on the candidate pairs only (not the judge's whole history)."""
    from pyspark.sql import functions as F

    keys = cands[["query_norm", "product_id"]].drop_duplicates()
    kdf = spark.createDataFrame(keys, schema="query_norm string, product_id string")
    return (lakehouse.read(spark, "judgments").where(F.col("judge_id") == judge_id)
            .join(kdf, on=["query_norm", "product_id"], how="left_semi")
            .select("query_norm", "product_id", "grade", "p2", "judge_id", "status").toPandas())


def _cap(examples: pd.DataFrame, cap: int) -> tuple[pd.DataFrame, int]:
    prio = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    ex = examples.assign(_p=examples["source"].map(prio).fillna(len(prio)),
                         _r=pd.to_numeric(examples["rank"], errors="coerce").fillna(-1))
    ex = ex.sort_values(["catalog", "query_norm", "_p", "_r", "product_id"], kind="stable")
    ex["_k"] = ex.groupby(["catalog", "query_norm"]).cumcount()
    kept = ex[ex["_k"] < cap].drop(columns=["_p", "_r", "_k"])
    return kept, int(len(ex) - len(kept))


class _SourceTally:
    """Counts and scores of one (catalog or overall, source) while ``training_examples`` streams past. Only
    the scores are kept (for the exact median): 8 bytes a row instead of the whole row."""

    def __init__(self) -> None:
        self.rows = 0
        self.grades: dict[int, int] = {}
        self.judge_grades: dict[int, int] = {}
        self.scores: list[np.ndarray] = []

    def add(self, g: pd.DataFrame) -> None:
        self.rows += len(g)
        for k, v in g["grade"].value_counts().items():
            self.grades[int(k)] = self.grades.get(int(k), 0) + int(v)
        for k, v in g["judge_grade"].dropna().astype(int).value_counts().items():
            self.judge_grades[int(k)] = self.judge_grades.get(int(k), 0) + int(v)
        sc = pd.to_numeric(g["score"], errors="coerce").dropna().to_numpy(np.float64)
        if len(sc):
            self.scores.append(sc)

    def summary(self, total: int) -> dict[str, Any]:
        sc = np.concatenate(self.scores) if self.scores else np.array([])
        return {"rows": self.rows, "share": round(self.rows / max(total, 1), 4),
                "grades": dict(sorted(self.grades.items())), "judge_grades": dict(sorted(self.judge_grades.items())),
                "mean_score": round(float(sc.mean()), 4) if len(sc) else None,
                "median_score": round(float(np.median(sc)), 4) if len(sc) else None}


def summarize(examples: pd.DataFrame) -> dict[str, Any]:
    """Per source: rows, share, grade distribution, judge grade distribution, similarity to the query."""
    tallies: dict[str, _SourceTally] = {}
    for src, g in examples.groupby("source", sort=True):
        tallies.setdefault(src, _SourceTally()).add(g)
    return {"rows": int(len(examples)), "queries": int(examples["query_norm"].nunique()),
            "sources": {src: t.summary(len(examples)) for src, t in tallies.items()}}


def run_mining(
    engines: Any,
    lakehouse: Lakehouse,
    cfg: MineConfig,
    split: SplitConfig,
    embed_cfg: EmbedConfig,
    judge_cfg: Any = None,
    run_id: str = "mine",
    use_ray: bool = True,
) -> MineResult:
    """Mine every seeded catalog and overwrite ``training_examples``; returns counts and timings."""
    from pyspark.sql import functions as F

    from strata.evaluate.retrievers import DenseRetriever

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    spark = engines.spark
    seeds = _seed_frame(spark, seed_examples(spark, lakehouse, split, cfg.engagement_exact_clicks), cfg)
    seeds = seeds.sort_values(["catalog", "query_norm", "product_id", "origin", "query"]).reset_index(drop=True)
    # One raw query text per normalised query (the first in sort order), used for embedding and output.
    qtext = seeds.groupby(["catalog", "query_norm"], sort=False)["query"].first()
    seeds["query"] = [qtext[(c, q)] for c, q in zip(seeds["catalog"], seeds["query_norm"])]
    if seeds.empty:
        raise ValueError("mine: no seed examples (train-split labels or engagement) for the chosen catalogs")
    catalogs = sorted(seeds["catalog"].unique())
    timings["seeds"] = time.perf_counter() - t0
    log.info("mine: %d seed pairs, %d queries, catalogs %s", len(seeds), seeds["query_norm"].nunique(), catalogs)

    t = time.perf_counter()
    _feature_views(spark, lakehouse)
    spark.createDataFrame(seeds[["source", "catalog", "query", "query_norm", "product_id", "grade", "origin"]]
                          ).createOrReplaceTempView("mine_seeds")
    n_products = spark.table("in_products").where(F.col("source").isin(catalogs)).count()
    structured = structured_candidates(spark, cfg, n_products).toPandas()
    timings["structured"] = time.perf_counter() - t

    dense = DenseRetriever(cfg.model, embed_cfg, engines if use_ray else None, name="mine")
    model_id = dense.model_id
    index_stats, cand_parts, seed_scores = [], [], []
    t = time.perf_counter()
    for catalog in catalogs:
        # Products stream through the embedder embed_cfg.stream_rows at a time: the driver holds the
        # catalog's ids and vectors (for FAISS), never its text.
        pids, pvecs = catalog_vectors(lakehouse, catalog, dense.embed, embed_cfg.stream_rows)
        cs = seeds[seeds["catalog"] == catalog]
        qtexts = sorted(set(cs["query"]))
        qvecs = dense.embed(qtexts, f"{catalog} queries")
        if not pids:  # seeds name a catalog without products: an empty index of the model's dimension
            pvecs = np.zeros((0, qvecs.shape[1]), dtype=np.float32)
        space = CatalogSpace(catalog, pids, pvecs, qtexts, qvecs)
        del pvecs
        ann, stats = ann_candidates(space, cs, cfg)
        index_stats.append(stats)
        st = structured[structured["catalog"] == catalog].assign(rank=np.nan)
        cands = pd.concat([ann, st], ignore_index=True)
        cands["_p"] = cands["route"].map({r: i for i, r in enumerate(ROUTES)})
        cands = (cands.sort_values(["query_norm", "product_id", "_p"], kind="stable")
                 .drop_duplicates(["query_norm", "product_id"]).drop(columns="_p"))
        cands["score"] = space.cosine(list(cands["query"]), list(cands["product_id"]))
        seeded = cs.copy()
        seeded["score"] = space.cosine(list(cs["query"]), list(cs["product_id"]))
        # The margin rule compares with the query's weakest positive (as mine_hard_negatives does).
        best = seeded[seeded["grade"] >= 1].groupby("query_norm")["score"].min()
        cands["positive_score"] = cands["query_norm"].map(best)
        seeded["positive_score"] = seeded["query_norm"].map(best)
        cand_parts.append(cands)
        seed_scores.append(seeded)
    cands = pd.concat(cand_parts, ignore_index=True)
    seeded = pd.concat(seed_scores, ignore_index=True)
    timings["ann"] = time.perf_counter() - t
    removed: dict[str, int] = {"candidates": int(len(cands))}

    t = time.perf_counter()
    judge_summary = None
    if judge_cfg is not None and cfg.use_judge:
        from strata.judge.backends import judge_identity
        from strata.judge.job import run_judging

        judge_id, _ = judge_identity(judge_cfg)
        staging = lakehouse.root / "_staging" / f"mine-{run_id}"
        try:
            # An empty frame needs no text (and Spark would write no file to read back).
            todo = cands.assign(product_text="") if cands.empty else _stage_for_judge(
                spark, cands, staging / "candidates")
            judge_summary = run_judging(engines, lakehouse, todo, judge_cfg, run_id, use_ray=use_ray)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            try:
                staging.parent.rmdir()  # _staging itself, unless another run is staging there
            except OSError:
                pass
        judged = _judgments_for(spark, lakehouse, cands, judge_id)
        mined, jstats = apply_judgments(cands, judged)
        judge_summary.update(jstats)
        removed["unjudged"] = jstats["unjudged_dropped"]
    else:
        kept, rm = margin_rule(cands, cfg)
        removed.update(rm)
        mined = kept.assign(grade=0, source=kept["route"], mined_from=None, judge_grade=np.nan,
                            judge_p2=np.nan, judge_id=None)
    timings["guard"] = time.perf_counter() - t

    human = seeded.assign(source=seeded["origin"], mined_from=None, rank=np.nan, judge_grade=np.nan,
                          judge_p2=np.nan, judge_id=None)
    examples = pd.concat([human, mined], ignore_index=True)
    examples, capped = _cap(examples, cfg.max_per_query)
    removed["per_query_cap"] = capped
    examples = examples.assign(model_id=model_id, synthetic=False)
    examples = examples.sort_values(["catalog", "query_norm", "product_id"]).reset_index(drop=True)
    cols = spec("training_examples").schema.names
    examples["rank"] = examples["rank"].astype("Int64")
    examples["judge_grade"] = examples["judge_grade"].astype("Int64")
    t = time.perf_counter()
    lakehouse.write(lakehouse.to_spark(spark, "training_examples", examples[cols]), "training_examples",
                    mode="overwrite")
    timings["write"] = time.perf_counter() - t
    by_source = {str(k): int(v) for k, v in examples["source"].value_counts().sort_index().items()}
    res = MineResult(int(len(examples)), by_source, removed, index_stats, judge_summary, model_id,
                     round(time.perf_counter() - t0, 2), {k: round(v, 2) for k, v in timings.items()},
                     lakehouse.version("training_examples"))
    log.info("mine: %d examples %s; removed %s; %.1fs", res.rows, by_source, removed, res.seconds)
    return res


REPORT_COLUMNS = ["catalog", "query_norm", "source", "grade", "judge_grade", "score"]


def mining_report(lakehouse: Lakehouse, out: str | Path | None = None) -> dict[str, Any]:
    """``summarize`` of the current ``training_examples`` (per catalog and overall), optionally as JSON.

    Streams the six columns it needs in record batches (``embed/scan.py``) and tallies as it goes: the driver
    holds the distinct query keys and one float64 score per row (twice: per catalog and overall), never the
    table's text columns; the result equals ``summarize`` over the whole table."""
    from strata.embed.scan import scan_batches

    tallies: dict[str | None, dict[str, _SourceTally]] = {None: {}}
    queries: dict[str | None, set[str]] = {None: set()}
    for batch in scan_batches(lakehouse, "training_examples", REPORT_COLUMNS):
        df = batch.to_pandas()
        for cat, cg in df.groupby("catalog", sort=False):
            queries.setdefault(cat, set()).update(cg["query_norm"].dropna())
            queries[None].update(cg["query_norm"].dropna())
            for src, g in cg.groupby("source", sort=False):
                for key in (cat, None):
                    tallies.setdefault(key, {}).setdefault(src, _SourceTally()).add(g)

    def part(key: str | None) -> dict[str, Any]:
        by = tallies.get(key, {})
        total = sum(t.rows for t in by.values())
        return {"rows": total, "queries": len(queries.get(key, ())),
                "sources": {src: by[src].summary(total) for src in sorted(by)}}

    rep = {"overall": part(None), "catalogs": {c: part(c) for c in sorted(k for k in tallies if k is not None)}}
    if out:
        Path(out).write_text(json.dumps(rep, indent=2))
    return rep
