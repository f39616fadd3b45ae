"""The mining job: seeds -> structured + ANN candidates -> false-negative guard -> ``training_examples``.

Spark does the joins over the lakehouse (seeds, taxonomy/attribute candidates, the judged candidates' verdicts,
the candidates' product text for the judge) and stages them as parquet under ``<lakehouse>/_staging``. The
driver works on one (catalog, query bucket) at a time: a bucket is a stable hash share of the catalog's seed
queries, ``mine.bucket_queries`` of them, so what the driver holds (that bucket's seeds, candidates and
scores, never any product text) is bounded by config, not by the number of labels. Per catalog it also holds
the product ids and vectors for FAISS (one index for all buckets), the products streaming through the
embedder ``embed.stream_rows`` at a time. The staged examples replace ``training_examples`` in one Delta
commit, so mining twice with the same inputs and seed gives the same table (rows sorted by key within each
bucket), and a killed run leaves the previous version in place.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from strata.config_base import SplitConfig
from strata.embed.config import EmbedConfig
from strata.embed.stage import catalog_vectors
from strata.mine.ann import CatalogSpace, ann_candidates, catalog_index
from strata.mine.config import ROUTES, MineConfig
from strata.mine.guard import apply_judgments, margin_rule
from strata.mine.seeds import seed_examples
from strata.mine.structured import structured_candidates
from strata.storage import StoragePath, parquet_dataset, rmtree
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


def _seed_table(spark: Any, seeds: Any, cfg: MineConfig) -> Any:
    """The seed pairs of the chosen catalogs and (``max_queries``) queries, as a Spark DataFrame: only the
    distinct (catalog, query) keys come to the driver to be hash-ordered when ``max_queries`` is set. Every
    row of a normalised query gets one raw query text: that of its first row in (product_id, origin, query)
    order, used for embedding and output."""
    from pyspark.sql import functions as F

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
    first = (seeds.groupBy("catalog", "query_norm")
             .agg(F.min(F.struct("product_id", "origin", "query")).alias("f"))
             .select("catalog", "query_norm", F.col("f")["query"].alias("query")))
    return seeds.drop("query").join(first, ["catalog", "query_norm"]).select(*SEED_COLUMNS)


SEED_COLUMNS = ("source", "catalog", "query", "query_norm", "product_id", "grade", "origin")
_S = pa.string()
CAND_SCHEMA = pa.schema([("source", _S), ("catalog", _S), ("query", _S), ("query_norm", _S), ("product_id", _S),
                         ("route", _S), ("rank", pa.float64()), ("score", pa.float64()),
                         ("positive_score", pa.float64())])
SEEDED_SCHEMA = pa.schema([("source", _S), ("catalog", _S), ("query", _S), ("query_norm", _S), ("product_id", _S),
                           ("grade", pa.int64()), ("origin", _S), ("score", pa.float64()),
                           ("positive_score", pa.float64())])


def _bucket(n_buckets: int) -> Any:
    """Spark column: the query's mining pass, a stable hash of (catalog, query_norm) mod ``n_buckets``."""
    from strata.sparkfn import hash_bucket

    return hash_bucket("catalog", "query_norm", buckets=n_buckets).cast("int")


def _read_part(path: StoragePath, catalog: str, bucket: int, columns: list[str] | None = None) -> pd.DataFrame:
    """One (catalog, bucket) of a staged parquet folder written ``partitionBy("_b")``: only that bucket's
    files are read (``catalog`` filtered as they stream)."""
    import pyarrow.dataset as ds

    part = path / f"_b={bucket}"
    files = sorted(str(f) for f in part.glob("*.parquet")) if part.is_dir() else []
    if not files:  # no row in this bucket (Sail writes no file for an empty result)
        return pd.DataFrame(columns=columns or [])
    d = parquet_dataset(files)
    return d.to_table(columns=columns, filter=ds.field("catalog") == catalog).to_pandas()


def _write_part(df: pd.DataFrame, schema: pa.Schema, path: StoragePath) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False), str(path))


def _stage_for_judge(spark: Any, cands: StoragePath, out: StoragePath) -> StoragePath:
    """The staged candidate pairs with their product's title and description, joined and written by Spark as
    parquet under ``out`` for the judging job (``run_judging`` on a path): the candidates' text never reaches
    the driver. A candidate whose product is missing keeps its row with an empty text."""
    spark.read.parquet(str(cands)).createOrReplaceTempView("mine_judge_keys")
    spark.sql("""
        SELECT k.source, k.catalog, k.query, k.query_norm, k.product_id, p.title, p.description
        FROM mine_judge_keys k
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


def _unjudged_reasons(cands: pd.DataFrame, judged: pd.DataFrame) -> dict[str, int]:
    """Why the guard drops candidates unjudged (``apply_judgments`` keeps only scored ones): no row by this
    judge (``no_verdict``), a row the judge failed on (``judge_failed``: the next judging run retries it), or
    any other unscored row (``unusable``: no query or product text)."""
    from strata.judge.protocol import RETRIED, SCORED

    m = cands[["query_norm", "product_id"]].merge(judged[["query_norm", "product_id", "status", "grade"]],
                                                  on=["query_norm", "product_id"], how="left", indicator=True)
    missing = (m["_merge"] == "left_only").to_numpy()
    failed = ~missing & m["status"].isin(RETRIED).to_numpy()
    scored = (m["status"].isin(SCORED) & m["grade"].notna()).to_numpy()
    return {"no_verdict": int(missing.sum()), "judge_failed": int(failed.sum()),
            "unusable": int((~missing & ~failed & ~scored).sum())}


def _cap(examples: pd.DataFrame, cap: int) -> tuple[pd.DataFrame, int]:
    prio = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    ex = examples.assign(_p=examples["source"].map(prio).fillna(len(prio)),
                         _r=pd.to_numeric(examples["rank"], errors="coerce").fillna(-1))
    ex = ex.sort_values(["catalog", "query_norm", "_p", "_r", "product_id"], kind="stable")
    ex["_k"] = ex.groupby(["catalog", "query_norm"]).cumcount()
    kept = ex[ex["_k"] < cap].drop(columns=["_p", "_r", "_k"])
    return kept, int(len(ex) - len(kept))


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
    """Mine every seeded catalog and overwrite ``training_examples``; returns counts and timings.

    Seeds, structured candidates, scored candidates and examples are staged as parquet under
    ``<lakehouse>/_staging/mine-<run_id>`` (removed at the end). The driver works on one (catalog, query
    bucket) at a time, ``cfg.bucket_queries`` seed queries per bucket: pass 1 finds and scores that bucket's
    candidates, the judge (if any) scores every staged candidate in one job, pass 2 applies the guard and
    the per-query cap. Spark then replaces ``training_examples`` with the staged examples in one commit."""
    judging = judge_cfg is not None and cfg.use_judge
    staging = lakehouse.staging(f"mine-{run_id}")
    # A killed mining run leaves its folder behind. Mining rewrites the whole table, so two mining runs on one
    # lakehouse never overlap usefully: every earlier run's leftovers go.
    for old in staging.parent.glob("mine-*"):
        rmtree(old)
    try:
        return _mine(engines, lakehouse, cfg, split, embed_cfg, judge_cfg if judging else None, run_id, use_ray,
                     staging)
    finally:
        rmtree(staging)
        try:
            staging.parent.rmdir()  # _staging itself, unless another run is staging there
        except OSError:
            pass


def _mine(engines: Any, lakehouse: Lakehouse, cfg: MineConfig, split: SplitConfig, embed_cfg: EmbedConfig,
          judge_cfg: Any, run_id: str, use_ray: bool, staging: StoragePath) -> MineResult:
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from strata.embed.retriever import DenseRetriever

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    spark = engines.spark
    seeds = _seed_table(spark, seed_examples(spark, lakehouse, split, cfg.engagement_exact_clicks), cfg)
    per_catalog = {r["catalog"]: int(r["n"]) for r in
                   seeds.groupBy("catalog").agg(F.countDistinct("query_norm").alias("n")).collect()}
    if not per_catalog:
        raise ValueError("mine: no seed examples (train-split labels or engagement) for the chosen catalogs")
    catalogs = sorted(per_catalog)
    n_buckets = max(1, -(-max(per_catalog.values()) // cfg.bucket_queries))
    seeds = seeds.withColumn("_b", _bucket(n_buckets))
    seeds.write.mode("overwrite").partitionBy("_b").parquet(str(staging / "seeds"))
    seeds = spark.read.parquet(str(staging / "seeds")).select(*SEED_COLUMNS)
    timings["seeds"] = time.perf_counter() - t0
    log.info("mine: %d seed queries, catalogs %s, %d bucket(s) per catalog", sum(per_catalog.values()), catalogs,
             n_buckets)

    t = time.perf_counter()
    _feature_views(spark, lakehouse)
    seeds.createOrReplaceTempView("mine_seeds")
    n_products = spark.table("in_products").where(F.col("source").isin(catalogs)).count()
    (structured_candidates(spark, cfg, n_products).withColumn("_b", _bucket(n_buckets))
     .write.mode("overwrite").partitionBy("_b").parquet(str(staging / "structured")))
    timings["structured"] = time.perf_counter() - t

    dense = DenseRetriever(cfg.model, embed_cfg, engines if use_ray else None, name="mine")
    model_id = dense.model_id
    index_stats: list[dict] = []
    n_units = 0  # (catalog, bucket) passes with seeds: their staged files are numbered 0..n_units-1
    n_cands = 0
    t = time.perf_counter()
    for ci, catalog in enumerate(catalogs):
        # Products stream through the embedder embed_cfg.stream_rows at a time: the driver holds the
        # catalog's ids and vectors (for FAISS), never its text. One index serves every query bucket.
        # ivfpq: the vectors go to a disk memmap under the staging folder; the index holds only PQ codes.
        # The memmap is the driver's own scratch: a local folder even when the lakehouse is in object storage.
        spill = (Path(tempfile.mkdtemp(prefix=f"strata-mine-vectors-{ci}-")) if lakehouse.remote
                 else staging / f"vectors-{ci}") if cfg.index == "ivfpq" else None
        pids, pvecs = catalog_vectors(lakehouse, catalog, dense.embed, embed_cfg.stream_rows, spill=spill)
        products, index = None, None
        for b in range(n_buckets):
            cs = _read_part(staging / "seeds", catalog, b, list(SEED_COLUMNS))
            if cs.empty:
                continue
            cs = cs.sort_values(["query_norm", "product_id", "origin", "query"]).reset_index(drop=True)
            qtexts = sorted(set(cs["query"]))
            qvecs = dense.embed(qtexts, f"{catalog} queries" + (f" (bucket {b + 1}/{n_buckets})" if n_buckets > 1
                                                                 else ""))
            if products is None:
                if not pids:  # seeds name a catalog without products: an empty index of the model's dimension
                    pvecs = np.zeros((0, qvecs.shape[1]), dtype=np.float32)
                products = CatalogSpace(catalog, pids, pvecs, [], qvecs[:0])
                del pvecs
            space = products.with_queries(qtexts, qvecs)
            if index is None:
                index, stats = catalog_index(space, cfg)
                index_stats.append(stats)
            ann, _ = ann_candidates(space, cs, cfg, index)
            st = _read_part(staging / "structured", catalog, b).assign(rank=np.nan)
            cands = pd.concat([ann, st], ignore_index=True) if len(st) else ann.copy()
            cands["_p"] = cands["route"].map({r: i for i, r in enumerate(ROUTES)})
            cands = (cands.sort_values(["query_norm", "product_id", "_p"], kind="stable")
                     .drop_duplicates(["query_norm", "product_id"]).drop(columns="_p"))
            cands["rank"] = pd.to_numeric(cands["rank"], errors="coerce").astype(float)
            cands["score"] = space.cosine(list(cands["query"]), list(cands["product_id"]))
            seeded = cs.copy()
            seeded["score"] = space.cosine(list(cs["query"]), list(cs["product_id"]))
            # The margin rule compares with the query's weakest positive (as mine_hard_negatives does).
            best = seeded[seeded["grade"] >= 1].groupby("query_norm")["score"].min()
            cands["positive_score"] = cands["query_norm"].map(best)
            seeded["positive_score"] = seeded["query_norm"].map(best)
            _write_part(cands, CAND_SCHEMA, staging / "cands" / f"{n_units:06d}.parquet")
            _write_part(seeded, SEEDED_SCHEMA, staging / "seeded" / f"{n_units:06d}.parquet")
            n_units += 1
            n_cands += len(cands)
        del products, index
        if spill is not None:
            rmtree(spill)
    timings["ann"] = time.perf_counter() - t
    removed: dict[str, int] = {"candidates": n_cands}

    t = time.perf_counter()
    judge_summary, judge_id = None, None
    if judge_cfg is not None:
        from strata.judge.backends import judge_identity
        from strata.judge.job import run_judging

        judge_id, _ = judge_identity(judge_cfg)
        if n_cands:
            path = _stage_for_judge(spark, staging / "cands", staging / "judge_candidates")
            judge_summary = run_judging(engines, lakehouse, path, judge_cfg, run_id, use_ray=use_ray)
        else:  # an empty frame needs no text (and Spark would write no file to read back)
            judge_summary = run_judging(engines, lakehouse, pd.DataFrame(columns=list(CAND_SCHEMA.names)).assign(
                product_text=""), judge_cfg, run_id, use_ray=use_ray)
        judge_summary.update({"judged": 0, "unjudged_dropped": 0, "judge_positive": 0,
                              "judge_positive_by_route": {},
                              "unjudged_by_reason": {"no_verdict": 0, "judge_failed": 0, "unusable": 0}})
        removed["unjudged"] = 0
    timings["judge"] = time.perf_counter() - t

    t = time.perf_counter()
    cols = spec("training_examples").schema.names
    by_source: dict[str, int] = {}
    rows = 0
    removed["per_query_cap"] = 0
    for i in range(n_units):
        cands = pq.read_table(str(staging / "cands" / f"{i:06d}.parquet")).to_pandas()
        seeded = pq.read_table(str(staging / "seeded" / f"{i:06d}.parquet")).to_pandas()
        if judge_cfg is not None:
            judged = _judgments_for(spark, lakehouse, cands, judge_id)
            mined, jstats = apply_judgments(cands, judged)
            for k in ("judged", "unjudged_dropped", "judge_positive"):
                judge_summary[k] += jstats[k]
            for k, v in _unjudged_reasons(cands, judged).items():
                judge_summary["unjudged_by_reason"][k] += v
            by_route = judge_summary["judge_positive_by_route"]
            for k, v in jstats["judge_positive_by_route"].items():
                by_route[k] = by_route.get(k, 0) + v
            removed["unjudged"] += jstats["unjudged_dropped"]
        else:
            kept, rm = margin_rule(cands, cfg)
            for k, v in rm.items():
                removed[k] = removed.get(k, 0) + v
            mined = kept.assign(grade=0, source=kept["route"], mined_from=None, judge_grade=np.nan,
                                judge_p2=np.nan, judge_id=None)
        human = seeded.assign(source=seeded["origin"], mined_from=None, rank=np.nan, judge_grade=np.nan,
                              judge_p2=np.nan, judge_id=None)
        examples, capped = _cap(pd.concat([human, mined], ignore_index=True), cfg.max_per_query)
        removed["per_query_cap"] += capped
        examples = examples.assign(model_id=model_id, synthetic=False)
        examples = examples.sort_values(["catalog", "query_norm", "product_id"]).reset_index(drop=True)
        for col in ("rank", "judge_grade"):
            examples[col] = pd.to_numeric(examples[col], errors="coerce").astype("Int32")
        examples["grade"] = examples["grade"].astype("int32")
        _write_part(examples, spec("training_examples").schema, staging / "examples" / f"{i:06d}.parquet")
        rows += len(examples)
        for k, v in examples["source"].value_counts().items():
            by_source[str(k)] = by_source.get(str(k), 0) + int(v)
    timings["guard"] = time.perf_counter() - t
    if judge_summary and judge_summary["unjudged_dropped"]:
        log.warning("mine: %d mined candidates dropped unjudged by %s %s (judge_failed: retried by the next judging "
                    "run)", judge_summary["unjudged_dropped"], judge_id, judge_summary["unjudged_by_reason"])

    t = time.perf_counter()
    lakehouse.write(spark.read.parquet(str(staging / "examples")).select(*cols), "training_examples",
                    mode="overwrite")
    timings["write"] = time.perf_counter() - t
    by_source = dict(sorted(by_source.items()))
    res = MineResult(rows, by_source, removed, index_stats, judge_summary, model_id,
                     round(time.perf_counter() - t0, 2), {k: round(v, 2) for k, v in timings.items()},
                     lakehouse.version("training_examples"))
    log.info("mine: %d examples %s; removed %s; %.1fs", res.rows, by_source, removed, res.seconds)
    return res
