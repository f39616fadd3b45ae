"""The streaming pieces the stages are built on, on tiny inputs (fast; no Spark, no Ray)."""

from __future__ import annotations

import numpy as np

from strata.embed.cache import EmbeddingCache
from strata.embed.stage import catalog_vectors
from strata.text import product_text


def test_catalog_vectors_steps_and_order(tmp_path, products_lakehouse):
    lh = products_lakehouse(tmp_path, 100)
    calls: list[list[str]] = []

    def embed(texts, desc):
        calls.append(list(texts))
        return np.array([[float(t.split()[1]), len(t)] for t in texts], dtype=np.float32)

    ids, vecs = catalog_vectors(lh, "shop", embed, rows=20)
    assert [len(c) for c in calls] == [20, 20, 20, 15]  # 75 products, at most 20 texts in memory per step
    assert ids == sorted(ids) and len(ids) == 75
    table = lh.read_arrow("products").to_pandas().set_index("product_id")
    want = np.array([[float(table.loc[p, "title"].split()[1]),
                      len(product_text(table.loc[p, "title"], table.loc[p, "description"]))] for p in ids])
    np.testing.assert_array_equal(vecs, want)  # row i is product ids[i]


def test_cache_gathers_across_parts_and_survives_repeated_keys(tmp_path):
    f = lambda texts: np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)  # noqa: E731
    a = EmbeddingCache(tmp_path, "m", 8)
    a.embed(["aa", "b"], f)
    a._write_shard(["b", "dddd"], f(["b", "dddd"]))  # a racing run wrote "b" again: 4 rows, 3 keys on disk
    c = EmbeddingCache(tmp_path, "m", 8)
    np.testing.assert_array_equal(c.embed(["eeeee", "b", "dddd", "aa"], f), f(["eeeee", "b", "dddd", "aa"]))
    np.testing.assert_array_equal(c.embed(["ff", "eeeee", "aa"], f), f(["ff", "eeeee", "aa"]))  # 3 parts now


def test_query_blocks_search_like_one_call():
    import faiss

    from strata.embed.index import build_index, search
    from strata.mine.ann import query_blocks

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    q = rng.normal(size=(130, 16)).astype(np.float32)
    index = build_index(x, "flat")
    old = faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_query_bs
    try:
        faiss.cvar.distance_compute_blas_query_bs = 32  # BLAS sub-blocks as small as our blocks
        for threshold in (old[0], 20):  # per-query path for every call / BLAS path for every call
            faiss.cvar.distance_compute_blas_threshold = threshold
            blocks = query_blocks(len(q), size=32)
            assert blocks[0][0] == 0 and blocks[-1][1] == len(q) and len(blocks) == (4 if len(q) >= threshold else 5)
            if len(q) >= threshold:
                assert all(e - s >= threshold for s, e in blocks)
            s1, r1 = search(index, q, 10)
            parts = [search(index, q[s:e], 10) for s, e in blocks]
            np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), r1)
            np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), s1)
    finally:
        faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_query_bs = old


def test_spilled_catalog_vectors_are_a_memmap_equal_to_the_in_memory_ones(tmp_path, products_lakehouse):
    lh = products_lakehouse(tmp_path / "lh", 100)

    def embed(texts, desc):
        return np.array([[float(t.split()[1]), len(t)] for t in texts], dtype=np.float32)

    ids, vecs = catalog_vectors(lh, "shop", embed, rows=20)
    sids, svecs = catalog_vectors(lh, "shop", embed, rows=20, spill=tmp_path / "spill")
    assert isinstance(svecs, np.memmap) and sids == ids
    np.testing.assert_array_equal(np.asarray(svecs), vecs)
    assert [p.name for p in (tmp_path / "spill").iterdir()] == ["vectors.npy"]  # the arrival-order file is gone
    np.testing.assert_array_equal(np.load(tmp_path / "spill" / "vectors.npy"), vecs)  # a plain .npy file
