"""The embed stage on its own: a catalog namespace -> vectors + FAISS index on disk.

The artefact a serving or mining job loads: ``ids.txt`` (one product id a line, row order), ``vectors.npy``
(float32, L2-normalised), ``index.faiss`` and ``meta.json`` (model id, counts, Delta version read).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from strata.config import EmbedConfig
from strata.tables import Lakehouse


@dataclass
class EmbedResult:
    out_dir: str
    products: int
    dim: int
    model_id: str
    products_version: int | None
    seconds: float


def product_text(title: str | None, description: str | None) -> str:
    """The text a product is embedded by: title, then description (what BEIR export uses too)."""
    return " ".join(x for x in (title or "", description or "") if x).strip()


def embed_catalog(
    engines: Any, lakehouse: Lakehouse, catalog: str, cfg: EmbedConfig, out_dir: str | Path
) -> EmbedResult:
    """Embed every product of ``catalog`` through Ray Data (cached by text hash) and build the index."""
    import faiss
    from pyspark.sql import functions as F

    from strata.embed.index import build_index
    from strata.evaluate.retrievers import DenseRetriever

    t0 = time.perf_counter()
    if not lakehouse.exists("products"):
        raise FileNotFoundError(f"no products table in {lakehouse.root}: ingest a catalog first")
    version = lakehouse.version("products")
    rows = (
        lakehouse.read(engines.spark, "products", version=version)
        .where(F.col("source") == catalog)
        .select("product_id", "title", "description")
        .orderBy("product_id")
        .toPandas()
    )
    if rows.empty:
        raise ValueError(f"catalog {catalog!r} has no products in {lakehouse.root}")
    texts = [product_text(t, d) for t, d in zip(rows["title"], rows["description"])]
    dense = DenseRetriever(cfg.model, cfg, engines)
    vecs = dense.embed(texts, "catalog")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ids.txt").write_text("\n".join(rows["product_id"].astype(str)) + "\n")
    np.save(out / "vectors.npy", vecs)
    index = build_index(vecs)
    if "Gpu" in type(index).__name__:  # a faiss-gpu index is written from its CPU copy
        index = faiss.index_gpu_to_cpu(index)
    faiss.write_index(index, str(out / "index.faiss"))
    result = EmbedResult(str(out), len(rows), int(vecs.shape[1]), dense.model_id, version,
                         round(time.perf_counter() - t0, 3))
    (out / "meta.json").write_text(json.dumps({**asdict(result), "catalog": catalog,
                                               "max_seq_length": cfg.max_seq_length}, indent=2) + "\n")
    return result
