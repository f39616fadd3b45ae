"""Build an evaluation set (BEIR) from the lakehouse: one source's labelled split over its whole catalog.

Full-corpus retrieval is the point: the corpus is every product of the source's catalog, not only the
labelled ones, so a model is scored the way search runs in production. Spark does the filtering; only the
(small) split and the catalog's id/text columns reach the driver.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from strata.sources.beir import BeirDataset, write_beir
from strata.tables import Lakehouse

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

# Which products namespace holds the documents a labels source refers to.
CATALOG_OF = {"homedepot": "homedepot", "bestbuy-small": "bestbuy", "wands": "wands", "beir": "beir"}


class DevSetError(ValueError):
    """The lakehouse lacks what the requested evaluation set needs."""


def query_id(query_norm: str) -> str:
    """Stable id for a normalised query, the same in every run and export."""
    return "q" + hashlib.sha1(query_norm.encode("utf-8")).hexdigest()[:12]


def build_devset(
    spark: "SparkSession", lakehouse: Lakehouse, dataset: str, split: str = "dev"
) -> BeirDataset:
    """Labels of ``dataset`` in ``split`` + the full catalog of its products namespace, as a BeirDataset."""
    from pyspark.sql import functions as F

    catalog = CATALOG_OF.get(dataset, dataset)
    for name in ("labels", "products"):
        if not lakehouse.exists(name):
            raise DevSetError(f"table {name!r} is missing from {lakehouse.root}: ingest {dataset!r} first")
    labels = (
        lakehouse.read(spark, "labels")
        .where((F.col("source") == dataset) & (F.col("split") == split))
        .select("query_norm", "product_id", "grade")
    )
    products = (
        lakehouse.read(spark, "products")
        .where(F.col("source") == catalog)
        .select("product_id", "title", "description")
    )
    lab = labels.toPandas()
    prod = products.toPandas()
    if lab.empty:
        raise DevSetError(f"no labels for source {dataset!r} split {split!r} in {lakehouse.root}")
    if prod.empty:
        raise DevSetError(f"no products in namespace {catalog!r} for dataset {dataset!r}")
    corpus = {
        str(r.product_id): {"title": r.title or "", "text": r.description or ""}
        for r in prod.itertuples(index=False)
    }
    missing = set(lab["product_id"]) - set(corpus)
    if missing:
        raise DevSetError(
            f"{len(missing)} labelled products of {dataset!r} are not in the catalog, e.g. {sorted(missing)[:3]}"
        )
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for r in lab.itertuples(index=False):
        qid = query_id(r.query_norm)
        queries[qid] = r.query_norm
        qrels.setdefault(qid, {})[str(r.product_id)] = int(r.grade)
    return BeirDataset(
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        split=split,
        name=f"{dataset}-{split}",
        meta={"labels_version": lakehouse.version("labels"), "products_version": lakehouse.version("products")},
    )


def export_devset(
    spark: "SparkSession", lakehouse: Lakehouse, dataset: str, out: Path, split: str = "dev"
) -> BeirDataset:
    ds = build_devset(spark, lakehouse, dataset, split)
    write_beir(ds, out)
    return ds
