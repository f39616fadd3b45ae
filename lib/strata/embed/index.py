"""FAISS inner-product index over L2-normalised vectors (so scores are cosines).

``auto`` picks exact search (``IndexFlatIP``) below ``HNSW_THRESHOLD`` rows: on a catalog of that size
brute force takes well under a second per thousand queries and has no recall loss, so evaluation numbers
are exact. Above it an HNSW graph (M=32, efConstruction=200, efSearch >= max(128, k)) keeps search
sub-linear at a small recall cost. When a faiss-gpu build sees a GPU, flat indexes are moved onto it.

``ivfpq`` (asked for explicitly) is the catalog-scale index: an inverted file of ``nlist`` lists with
product-quantised codes (``IVF{nlist},PQ{m}x{nbits}``, inner product). It holds m bytes per vector instead of
4 x dim (48 vs 1,536 at 384-d), is trained on a random sample of rows and filled in chunks, so ``vectors``
may be a disk ``np.memmap`` that is never loaded whole (``build_ivfpq``).
"""

from __future__ import annotations

import logging
import math

import numpy as np

try:
    import faiss
except ImportError as e:  # the build is an extra: faiss-cpu and faiss-gpu both provide the `faiss` module
    raise ImportError("faiss is not installed: pip install 'strata-retrieval[cpu]' (faiss-cpu), or '[gpu]' "
                      "(faiss-gpu-cu12, on a CUDA 12 image)") from e

log = logging.getLogger(__name__)

HNSW_THRESHOLD = 200_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128
KINDS = ("auto", "flat", "hnsw", "ivfpq")
ADD_CHUNK = 65_536  # rows copied from a (memmapped) array per train/add call


def _as_f32(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {x.shape}")
    return x


def _gpus() -> int:
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if callable(get) and hasattr(faiss, "index_cpu_to_all_gpus") else 0


def build_index(vectors: np.ndarray, kind: str = "auto") -> faiss.Index:
    """An inner-product index over ``vectors`` (rows should be L2-normalised)."""
    if kind not in KINDS:
        raise ValueError(f"index kind {kind!r}: choose one of {', '.join(KINDS)}")
    if kind == "ivfpq":
        return build_ivfpq(vectors)
    x = _as_f32(vectors)
    n, dim = x.shape
    if kind == "auto":
        kind = "flat" if n < HNSW_THRESHOLD else "hnsw"
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(dim)
        if _gpus() > 0:
            index = faiss.index_cpu_to_all_gpus(index)
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(x)
    log.info("faiss %s index: %d vectors of dim %d", kind, n, dim)
    return index


def ivfpq_shape(n: int, dim: int, nlist: int | None = None, m: int = 48) -> tuple[int, int, int]:
    """(nlist, m, nbits) for ``n`` vectors of ``dim``: nlist ~ 4 sqrt(n) (FAISS' rule of thumb) unless given;
    m the largest divisor of dim <= ``m``; 8-bit codes when there are enough rows to train 256 centroids per
    sub-space (39 each, FAISS' minimum without a warning), fewer bits on small catalogs."""
    if n < 2:
        raise ValueError(f"ivfpq needs at least 2 vectors (got {n})")
    nlist = int(nlist or min(65_536, max(1, round(4 * math.sqrt(n)))))
    nlist = max(1, min(nlist, n // 39 or 1))
    m = max(d for d in range(1, min(m, dim) + 1) if dim % d == 0)
    nbits = int(max(1, min(8, math.floor(math.log2(max(2, n // 39))))))
    return nlist, m, nbits


def build_ivfpq(vectors: np.ndarray, nlist: int | None = None, m: int = 48, nprobe: int = 32,
                train_rows: int = 100_000, seed: int = 13) -> faiss.Index:
    """An IVF-PQ inner-product index over ``vectors`` (an array or a disk memmap): trained on up to
    ``train_rows`` random rows, filled ``ADD_CHUNK`` rows at a time, so only one chunk is copied to RAM."""
    n, dim = vectors.shape
    nlist, m, nbits = ivfpq_shape(n, dim, nlist, m)
    index = faiss.index_factory(dim, f"IVF{nlist},PQ{m}x{nbits}", faiss.METRIC_INNER_PRODUCT)
    need = max(nlist, 2 ** nbits) * 39
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max(need, min(train_rows, n))), replace=False))
    index.train(_as_f32(vectors[rows]))
    for start in range(0, n, ADD_CHUNK):
        index.add(_as_f32(vectors[start:start + ADD_CHUNK]))
    faiss.extract_index_ivf(index).nprobe = min(nprobe, nlist)
    log.info("faiss IVF%d,PQ%dx%d index: %d vectors of dim %d (trained on %d, nprobe %d)", nlist, m, nbits, n, dim,
             len(rows), min(nprobe, nlist))
    return index


def exact_search_chunked(vectors: np.ndarray, queries: np.ndarray, k: int,
                         chunk: int = ADD_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of ``queries`` over ``vectors`` (an array or memmap) read ``chunk`` rows
    at a time: the reference an approximate index is checked against, without loading the catalog."""
    q = _as_f32(queries)
    k = max(1, min(int(k), len(vectors)))
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        s = q @ _as_f32(vectors[start:start + chunk]).T
        i = np.broadcast_to(np.arange(start, start + s.shape[1], dtype=np.int64), s.shape)
        s, i = np.concatenate([best_s, s], axis=1), np.concatenate([best_i, i], axis=1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, top, axis=1), np.take_along_axis(i, top, axis=1)
    return best_s, best_i


def search_refined(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, k: int, factor: int = 4,
                   block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` by exact inner product among the index's top ``factor`` x k (an IVF-PQ shortlist re-ranked
    with the full vectors, read from ``vectors``, an array or memmap, ``block`` queries at a time).

    PQ codes blur near neighbours: in a dense part of a catalog the code distances reorder the top k, and more
    lists (nprobe) do not help. Re-ranking a few times k candidates exactly recovers most of that."""
    q = _as_f32(queries)
    k = max(1, min(int(k), int(index.ntotal))) if index.ntotal else 1
    _, short = search(index, q, k * max(1, int(factor)))
    out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(q), k), -1, dtype=np.int64)
    for start in range(0, len(q), block):
        rows = short[start:start + block]
        uniq, inv = np.unique(rows[rows >= 0], return_inverse=True)
        vecs = _as_f32(vectors[uniq]) if len(uniq) else np.zeros((0, q.shape[1]), dtype=np.float32)
        pos = np.full(rows.shape, -1, dtype=np.int64)
        pos[rows >= 0] = inv
        for j, (r, p) in enumerate(zip(rows, pos)):
            ok = p >= 0
            scores = vecs[p[ok]] @ q[start + j]
            top = np.argsort(-scores, kind="stable")[:k]
            out_s[start + j, :len(top)] = scores[top]
            out_i[start + j, :len(top)] = r[ok][top]
    return out_s, out_i


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, row indices) per query, best first; rows are -1 where fewer than k exist."""
    q = _as_f32(queries)
    k = max(1, min(int(k), int(index.ntotal))) if index.ntotal else 1
    if isinstance(index, faiss.IndexHNSW) and index.hnsw.efSearch < k:
        index.hnsw.efSearch = k  # HNSW cannot return more than efSearch candidates
    scores, rows = index.search(q, k)
    return scores, rows
