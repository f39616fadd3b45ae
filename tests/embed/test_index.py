"""FAISS flat search must equal brute-force numpy top-k."""

from __future__ import annotations

import numpy as np
import pytest

from strata.embed.index import build_index, search, search_refined


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_equals_numpy_top_k() -> None:
    rng = np.random.default_rng(7)
    docs, queries, k = _unit(rng, 2000, 32), _unit(rng, 50, 32), 20
    scores, rows = search(build_index(docs, "flat"), queries, k)
    sims = queries @ docs.T
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(sims, expected, axis=1), atol=1e-5)


def test_auto_is_exact_on_small_corpora_and_k_is_clamped() -> None:
    rng = np.random.default_rng(1)
    docs = _unit(rng, 30, 8)
    scores, rows = search(build_index(docs), docs[:3], 100)
    assert rows.shape == (3, 30)
    np.testing.assert_array_equal(rows[:, 0], [0, 1, 2])


def test_hnsw_finds_the_vector_itself() -> None:
    rng = np.random.default_rng(3)
    docs = _unit(rng, 500, 16)
    _, rows = search(build_index(docs, "hnsw"), docs[:20], 150)
    assert rows.shape == (20, 150)
    np.testing.assert_array_equal(rows[:, 0], np.arange(20))


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="index kind"):
        build_index(np.zeros((2, 4), dtype=np.float32), "ivf")


def _clustered(rng: np.random.Generator, n: int, d: int, centres: int = 40) -> np.ndarray:
    """Unit vectors around ``centres`` directions: product embeddings cluster, uniform noise does not."""
    c = _unit(rng, centres, d)
    x = c[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_search_chunked_equals_flat() -> None:
    from strata.embed.index import exact_search_chunked

    rng = np.random.default_rng(3)
    docs, queries = _unit(rng, 1000, 16), _unit(rng, 20, 16)
    s_flat, r_flat = search(build_index(docs, "flat"), queries, 30)
    s, r = exact_search_chunked(docs, queries, 30, chunk=97)  # chunks that do not divide the corpus
    np.testing.assert_array_equal(r, r_flat)
    np.testing.assert_allclose(s, s_flat, atol=1e-5)


def test_ivfpq_from_a_memmap_finds_most_exact_neighbours(tmp_path) -> None:
    from strata.embed.index import exact_search_chunked, ivfpq_shape

    rng = np.random.default_rng(5)
    docs = _clustered(rng, 8000, 32)
    mm = np.memmap(tmp_path / "v.f32", dtype=np.float32, mode="w+", shape=docs.shape)
    mm[:] = docs
    mm.flush()
    queries = docs[rng.choice(8000, 100, replace=False)]
    index = build_index(np.memmap(tmp_path / "v.f32", dtype=np.float32, mode="r", shape=docs.shape), "ivfpq")
    assert type(index).__name__ == "IndexIVFPQ" and index.ntotal == 8000
    assert ivfpq_shape(8000, 32) == (205, 32, 7) and ivfpq_shape(10**7, 384) == (12649, 48, 8)
    _, approx = search(index, queries, 20)
    _, exact = exact_search_chunked(docs, queries, 20)
    recall = np.mean([len(set(a) & set(e)) / 20 for a, e in zip(approx, exact)])
    assert recall > 0.6, recall  # PQ codes of 1 byte per 1 dim here; nprobe 32 of 205 lists
    assert np.mean(approx[:, 0] == exact[:, 0]) > 0.9  # the query's own vector comes first
    s, refined = search_refined(index, mm, queries, 20, factor=4)  # the shortlist re-ranked exactly
    r_refined = np.mean([len(set(a) & set(e)) / 20 for a, e in zip(refined, exact)])
    assert r_refined > max(recall, 0.9), (recall, r_refined)
    np.testing.assert_allclose(s, np.take_along_axis(queries @ docs.T, refined, axis=1), atol=1e-5)
    assert (np.diff(s, axis=1) <= 1e-7).all()  # exact scores, best first
