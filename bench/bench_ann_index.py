"""ANN index for mining at catalog scale: IVF-PQ over a disk memmap (``mine.index=ivfpq``) vs exact FAISS flat
search in RAM (the ``auto`` index below 200k products), on the same vectors and queries.

Vectors: the real embeddings of a catalog written by ``strata embed`` (``vectors.npy``; default: the 12,000
Best Buy products of an earlier scale run), grown to ``--factors`` x by adding noisy copies (each copy = a
real vector + Gaussian noise of ``--noise`` per unit of norm, re-normalised): the larger catalogs are
synthetic around real directions, and the table says so. Queries: ``--queries`` real vectors, perturbed the
same way. For each factor: build seconds (flat: add; ivfpq: train on 100k sampled rows + add in chunks from the
memmap), the index's serialized bytes (what it holds in RAM), search seconds for the queries at k =
``--k`` (the mining rank window), and recall@k against the exact top-k of IVF-PQ alone and of IVF-PQ with its
top ``--refine`` x k re-ranked by the exact vectors read from the memmap (what mining does, ``mine.ivf_refine``).

    .venv/bin/python bench/bench_ann_index.py --vectors /tmp/scale/d/embed/vectors.npy --factors 1,4,16,64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))


def grown(base, factor: int, noise: float, path: Path, seed: int):
    """``factor`` x the base rows as a disk memmap: the originals, then noisy copies, in chunks."""
    import numpy as np

    n, d = base.shape
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(n * factor, d))
    rng = np.random.default_rng(seed)
    for j in range(factor):
        x = base if j == 0 else base + rng.standard_normal(base.shape).astype(np.float32) * noise / np.sqrt(d)
        out[j * n:(j + 1) * n] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()
    return np.memmap(path, dtype=np.float32, mode="r", shape=(n * factor, d))


def main() -> None:
    import faiss
    import numpy as np

    from strata.embed.index import build_index, build_ivfpq, exact_search_chunked, ivfpq_shape, search, search_refined

    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", default="/tmp/scale/d/embed/vectors.npy")
    ap.add_argument("--factors", default="1,4,16,64")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--refine", type=int, default=4, help="re-rank the top refine x k PQ hits exactly (mine.ivf_refine)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ann_index.json"))
    a = ap.parse_args()
    faiss.omp_set_num_threads(a.threads)
    base = np.load(a.vectors).astype(np.float32)
    rng = np.random.default_rng(7)
    q = base[rng.choice(len(base), a.queries, replace=False)]
    q = q + rng.standard_normal(q.shape).astype(np.float32) * a.noise / np.sqrt(q.shape[1])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in [int(x) for x in a.factors.split(",")]:
            vecs = grown(base, f, a.noise, Path(tmp) / f"v{f}.f32", seed=f)
            n = len(vecs)
            t0 = time.perf_counter()
            ivf = build_ivfpq(vecs, nprobe=a.nprobe)
            ivf_build = time.perf_counter() - t0
            t0 = time.perf_counter()
            _, approx = search(ivf, q, a.k)
            ivf_search = time.perf_counter() - t0
            t0 = time.perf_counter()
            _, refined = search_refined(ivf, vecs, q, a.k, a.refine)
            ivf_refined_search = time.perf_counter() - t0
            t0 = time.perf_counter()
            flat = build_index(np.asarray(vecs), "flat")
            flat_build = time.perf_counter() - t0
            t0 = time.perf_counter()
            exact_s, exact = search(flat, q, a.k)
            flat_search = time.perf_counter() - t0
            chunked = exact_search_chunked(vecs, q[:50], a.k)[0]  # the reference mining reports against: the same
            assert np.allclose(chunked, exact_s[:50], atol=1e-5)  # scores (ids may differ among exact ties)
            recall = float(np.mean([len(set(x) & set(e)) / a.k for x, e in zip(approx, exact)]))
            recall_refined = float(np.mean([len(set(x) & set(e)) / a.k for x, e in zip(refined, exact)]))
            nlist, m, nbits = ivfpq_shape(n, vecs.shape[1])
            row = {"factor": f, "products": n, "nlist": nlist, "m": m, "nbits": nbits, "nprobe": min(a.nprobe, nlist),
                   "flat_bytes": int(faiss.serialize_index(flat).nbytes),
                   "ivfpq_bytes": int(faiss.serialize_index(ivf).nbytes),
                   "flat_build_s": round(flat_build, 3), "ivfpq_build_s": round(ivf_build, 3),
                   "flat_search_s": round(flat_search, 3), "ivfpq_search_s": round(ivf_search, 3),
                   "recall_at_k": round(recall, 4), "refine": a.refine,
                   "ivfpq_refined_search_s": round(ivf_refined_search, 3), "recall_refined_at_k": round(recall_refined, 4)}
            row["bytes_ratio_ivfpq_flat"] = round(row["ivfpq_bytes"] / row["flat_bytes"], 4)
            row["search_ratio_ivfpq_flat"] = round(ivf_search / max(flat_search, 1e-9), 4)
            row["search_ratio_refined_flat"] = round(ivf_refined_search / max(flat_search, 1e-9), 4)
            rows.append(row)
            print(row, flush=True)
            del flat, ivf, vecs
    res = {"command": " ".join([".venv/bin/python", "bench/bench_ann_index.py", *sys.argv[1:]]),
           "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, faiss {faiss.__version__}",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "k": a.k, "queries": a.queries,
           "noise": a.noise, "vectors": a.vectors, "runs": rows}
    Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
