"""FAISS flat search must equal brute-force numpy top-k."""

from __future__ import annotations

import numpy as np
import pytest

from strata.embed.index import build_index, search


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
