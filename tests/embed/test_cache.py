import numpy as np
import pytest

from strata.embed.cache import EmbeddingCache


class Counting:
    """A fake embedder that records what it was asked to compute (the cache's contract is about calls)."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def test_computes_only_unseen_distinct_texts_and_keeps_order(tmp_path):
    f = Counting()
    c = EmbeddingCache(tmp_path, "m@1", 48)
    v1 = c.embed(["aa", "b", "aa"], f)
    assert f.calls == [["aa", "b"]]
    np.testing.assert_array_equal(v1, [[2, 97], [1, 98], [2, 97]])
    v2 = c.embed(["ccc", "b"], f)
    assert f.calls[-1] == ["ccc"]
    np.testing.assert_array_equal(v2, [[3, 99], [1, 98]])


def test_persists_across_instances_and_separates_models(tmp_path):
    f = Counting()
    EmbeddingCache(tmp_path, "m@1", 48).embed(["x", "y"], f)
    again = EmbeddingCache(tmp_path, "m@1", 48)
    assert len(again) == 2
    again.embed(["y", "x"], f)
    assert len(f.calls) == 1  # nothing recomputed
    EmbeddingCache(tmp_path, "m@2", 48).embed(["x"], f)
    EmbeddingCache(tmp_path, "m@1", 64).embed(["x"], f)
    assert len(f.calls) == 3  # another model or sequence length is another cache


def test_wrong_count_from_embedder_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="returned 1 vectors for 2"):
        EmbeddingCache(tmp_path, "m", None).embed(["a", "b"], lambda t: np.zeros((1, 2), np.float32))
