"""Build an evaluation set (BEIR) from the lakehouse: one source's labelled split over its whole catalog.

Full-corpus retrieval is the point: the corpus is every product of the source's catalog, not only the
labelled ones, so a model is scored the way search runs in production. Spark does the filtering; only the
(small) labelled split reaches the driver whole. ``export_devset`` streams the catalog to ``corpus.jsonl`` one
record batch at a time (a 10M-product catalog never sits in the driver); ``build_devset`` is the in-memory
form for notebooks and small catalogs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from strata.catalogs import catalog_of
from strata.sources.beir import BeirDataset, corpus_line, write_beir
from strata.tables import Lakehouse

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

class DevSetError(ValueError):
    """The lakehouse lacks what the requested evaluation set needs."""


def query_id(query_norm: str) -> str:
    """Stable id for a normalised query, the same in every run and export."""
    return "q" + hashlib.sha1(query_norm.encode("utf-8")).hexdigest()[:12]


def _split_labels(spark: "SparkSession", lakehouse: Lakehouse, dataset: str, split: str):
    """(catalog namespace, labels of ``split`` as pandas: query_norm, product_id, grade); raises if absent."""
    from pyspark.sql import functions as F

    catalog = catalog_of(dataset)
    for name in ("labels", "products"):
        if not lakehouse.exists(name):
            raise DevSetError(f"table {name!r} is missing from {lakehouse.root}: ingest {dataset!r} first")
    lab = (
        lakehouse.read(spark, "labels")
        .where((F.col("source") == dataset) & (F.col("split") == split))
        .select("query_norm", "product_id", "grade")
        .toPandas()
    )
    if lab.empty:
        raise DevSetError(f"no labels for source {dataset!r} split {split!r} in {lakehouse.root}")
    # Spark's row order is not stable across runs: sorted, the same lakehouse gives byte-identical files
    return catalog, lab.sort_values(["query_norm", "product_id"], kind="stable").reset_index(drop=True)


def _queries_qrels(lab) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for r in lab.itertuples(index=False):
        qid = query_id(r.query_norm)
        queries[qid] = r.query_norm
        qrels.setdefault(qid, {})[str(r.product_id)] = int(r.grade)
    return queries, qrels


def _missing_error(dataset: str, missing: set[str]) -> DevSetError:
    return DevSetError(
        f"{len(missing)} labelled products of {dataset!r} are not in the catalog, e.g. {sorted(missing)[:3]}"
    )


def build_devset(
    spark: "SparkSession", lakehouse: Lakehouse, dataset: str, split: str = "dev"
) -> BeirDataset:
    """Labels of ``dataset`` in ``split`` + the full catalog of its products namespace, as a BeirDataset
    (in memory: for notebooks and small catalogs; ``export_devset`` streams)."""
    from pyspark.sql import functions as F

    catalog, lab = _split_labels(spark, lakehouse, dataset, split)
    prod = (
        lakehouse.read(spark, "products")
        .where(F.col("source") == catalog)
        .select("product_id", "title", "description")
        .toPandas()
    )
    if prod.empty:
        raise DevSetError(f"no products in namespace {catalog!r} for dataset {dataset!r}")
    corpus = {
        str(r.product_id): {"title": r.title or "", "text": r.description or ""}
        for r in prod.itertuples(index=False)
    }
    missing = set(lab["product_id"].astype(str)) - set(corpus)
    if missing:
        raise _missing_error(dataset, missing)
    queries, qrels = _queries_qrels(lab)
    return BeirDataset(
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        split=split,
        name=f"{dataset}-{split}",
        meta={"labels_version": lakehouse.version("labels"), "products_version": lakehouse.version("products")},
    )


@dataclass
class DevSetExport:
    """What ``export_devset`` wrote: the folder and its counts (the corpus itself stays on disk)."""

    out: Path
    split: str
    queries: int
    docs: int
    judgments: int
    meta: dict[str, object] = field(default_factory=dict)


def export_devset(
    spark: "SparkSession", lakehouse: Lakehouse, dataset: str, out: Path, split: str = "dev",
    batch_rows: int = 65_536,
) -> DevSetExport:
    """Write ``dataset``'s ``split`` as a BEIR folder at ``out``, streaming the catalog.

    The labelled split goes through Spark to the driver (it is small: the queries a team judges). The catalog is
    read ``batch_rows`` products at a time from one pinned table version (delta-rs / pyarrow, as the embed stage
    does) and appended to ``corpus.jsonl``, so driver memory is bounded by the batch plus the labelled product
    ids, not by the catalog. The files equal ``write_beir(build_devset(...))`` up to the order of corpus lines
    (tests/evaluate/test_devset.py); ids are unique because ``products`` is keyed on (source, product_id)."""
    import pyarrow.compute as pc

    out = Path(out)
    catalog, lab = _split_labels(spark, lakehouse, dataset, split)
    queries, qrels = _queries_qrels(lab)
    labelled = {str(p) for p in lab["product_id"]}
    products_version = lakehouse.version("products")
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    tmp = out / "corpus.jsonl.part"
    docs = 0
    seen_labelled: set[str] = set()
    with tmp.open("w", encoding="utf-8") as f:
        for batch in lakehouse.scan_batches("products", ["product_id", "title", "description"],
                                            filter=pc.field("source") == catalog, batch_rows=batch_rows,
                                            version=products_version):
            cols = [batch.column(c).to_pylist() for c in ("product_id", "title", "description")]
            lines = []
            for pid, title, desc in zip(*cols):
                did = str(pid)
                if did in labelled:
                    seen_labelled.add(did)
                lines.append(corpus_line(did, title or "", desc or ""))
            if lines:
                f.write("\n".join(lines) + "\n")
            docs += len(lines)
    if docs == 0:
        tmp.unlink()
        raise DevSetError(f"no products in namespace {catalog!r} for dataset {dataset!r}")
    missing = labelled - seen_labelled
    if missing:
        tmp.unlink()
        raise _missing_error(dataset, missing)
    tmp.replace(out / "corpus.jsonl")
    write_beir(BeirDataset(corpus={}, queries=queries, qrels=qrels, split=split), out, corpus=False)
    return DevSetExport(
        out=out, split=split, queries=len(qrels), docs=docs, judgments=int(len(lab)),
        meta={"labels_version": lakehouse.version("labels"), "products_version": products_version},
    )
