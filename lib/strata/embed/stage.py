"""The embed stage on its own: a catalog namespace -> vectors + FAISS index on disk.

The artefact a serving or mining job loads: ``ids.txt`` (one product id a line, row order), ``vectors.npy``
(float32, L2-normalised), ``index.faiss`` and ``meta.json`` (model id, counts, Delta version read).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from strata.embed.config import EmbedConfig
from strata.tables import Lakehouse
from strata.text import product_text


@dataclass
class EmbedResult:
    out_dir: str
    products: int
    dim: int
    model_id: str
    products_version: int | None
    seconds: float


def catalog_texts(lakehouse: Lakehouse, catalog: str, rows: int, version: int | None = None
                  ) -> Iterator[tuple[list[str], list[str]]]:
    """(product ids, product texts) of ``catalog``, ``rows`` at a time, in table order (never the whole catalog:
    one record batch of at most ``rows`` products is read at a time)."""
    import pyarrow.compute as pc

    ids: list[str] = []
    texts: list[str] = []
    for batch in lakehouse.scan_batches("products", ["product_id", "title", "description"],
                                        filter=pc.field("source") == catalog, batch_rows=rows, version=version):
        ids += batch.column("product_id").to_pylist()
        texts += [product_text(t, d) for t, d in zip(batch.column("title").to_pylist(),
                                                     batch.column("description").to_pylist())]
        del batch
        while len(ids) >= rows:
            step_ids, step_texts = ids[:rows], texts[:rows]
            ids, texts = ids[rows:], texts[rows:]
            yield step_ids, step_texts
            del step_ids, step_texts
    if ids:
        yield ids, texts


def catalog_vectors(lakehouse: Lakehouse, catalog: str, embed: Callable[[list[str], str], np.ndarray], rows: int,
                    version: int | None = None, spill: Path | None = None) -> tuple[list[str], np.ndarray]:
    """Every product of ``catalog`` embedded ``rows`` products at a time: (ids sorted, vectors in that order).

    Driver memory: one step's texts plus the catalog's vectors (n x dim float32, what a flat index holds
    anyway), never the catalog's text. With ``spill`` (a folder), the vectors go to disk as they come and the
    result is a read-only ``np.memmap`` in id order (``spill/vectors.npy``): RAM holds one step and the ids,
    for an index that reads its rows in chunks (IVF-PQ).
    """
    ids: list[str] = []
    parts: list[np.ndarray] = []
    raw, dim = None, 0
    if spill is not None:
        Path(spill).mkdir(parents=True, exist_ok=True)
        raw = open(Path(spill) / "arrival.f32", "wb")  # noqa: SIM115 (closed below, also on error)
    try:
        for step_ids, texts in catalog_texts(lakehouse, catalog, rows, version):
            v = np.ascontiguousarray(embed(texts, f"{catalog} products"), dtype=np.float32)
            dim = v.shape[1]
            if raw is None:
                parts.append(v)
            else:
                raw.write(v.tobytes())
            ids += step_ids
            del texts, v
    finally:
        if raw is not None:
            raw.close()
    if not ids:
        return [], np.zeros((0, 0), dtype=np.float32)
    order = np.asarray(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)  # product_id order, as
    # Spark's orderBy gave
    if raw is None:
        vecs = np.concatenate(parts)
        del parts
        return [ids[i] for i in order], np.ascontiguousarray(vecs[order])
    src = np.memmap(Path(spill) / "arrival.f32", dtype=np.float32, mode="r", shape=(len(ids), dim))
    out = np.lib.format.open_memmap(Path(spill) / "vectors.npy", mode="w+", dtype=np.float32, shape=(len(ids), dim))
    for start in range(0, len(ids), rows):  # the same permutation, a step of rows at a time
        out[start:start + rows] = src[order[start:start + rows]]
    out.flush()
    del src, out
    (Path(spill) / "arrival.f32").unlink()
    return [ids[i] for i in order], np.load(Path(spill) / "vectors.npy", mmap_mode="r", allow_pickle=False)


def embed_catalog(
    engines: Any, lakehouse: Lakehouse, catalog: str, cfg: EmbedConfig, out_dir: str | Path
) -> EmbedResult:
    """Embed every product of ``catalog`` through Ray Data (cached by text hash) and build the index.

    Products stream in ``cfg.stream_rows`` at a time (see ``catalog_vectors``), so the catalog's text is never
    in driver memory at once; with ``cfg.index="ivfpq"`` neither are its vectors (disk memmap, IVF-PQ index).
    """
    from strata.embed.index import faiss

    from strata.embed.index import build_index
    from strata.embed.retriever import DenseRetriever

    t0 = time.perf_counter()
    if not lakehouse.exists("products"):
        raise FileNotFoundError(f"no products table in {lakehouse.root}: ingest a catalog first")
    version = lakehouse.version("products")
    dense = DenseRetriever(cfg.model, cfg, engines)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spill = out if cfg.index == "ivfpq" else None  # ivfpq: catalog_vectors writes out/vectors.npy itself
    ids, vecs = catalog_vectors(lakehouse, catalog, dense.embed, cfg.stream_rows, version, spill=spill)
    if not ids:
        raise ValueError(f"catalog {catalog!r} has no products in {lakehouse.root}")
    with (out / "ids.txt").open("w") as fh:
        fh.writelines(f"{p}\n" for p in ids)
    if spill is None:
        np.save(out / "vectors.npy", vecs)
    index = build_index(vecs, cfg.index)
    del vecs
    if "Gpu" in type(index).__name__:  # a faiss-gpu index is written from its CPU copy
        index = faiss.index_gpu_to_cpu(index)
    faiss.write_index(index, str(out / "index.faiss"))
    result = EmbedResult(str(out), len(ids), int(index.d), dense.model_id, version,
                         round(time.perf_counter() - t0, 3))
    (out / "meta.json").write_text(json.dumps({**asdict(result), "catalog": catalog, "index": type(index).__name__,
                                               "max_seq_length": cfg.max_seq_length}, indent=2) + "\n")
    return result
