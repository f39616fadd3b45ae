"""Per-batch row sampling: which rows of a query group each Stage 1 mode sends to the loss."""

import random

import pytest

from strata.train.data import sample_batch

GROUP = {"query": ["drill"], "texts": [["e1", "e2", "p1", "p2", "z1", "z2", "z3"]], "pids": [[1, 2, 3, 4, 5, 6, 7]],
         "grades": [[2, 2, 1, 1, 0, 0, 0]]}


def _grades(partials: str, seed: int, negatives: int = 3, group: dict = GROUP) -> list[int]:
    return sample_batch(group, 1, random.Random(seed), negatives=negatives, partials=partials)[3]


@pytest.mark.parametrize("seed", range(20))
def test_graded_mode_sends_one_exact_one_partial_then_irrelevant(seed):
    assert _grades("graded", seed) == [2, 1, 0, 0]


@pytest.mark.parametrize("seed", range(20))
def test_ignore_mode_prefers_irrelevant_rows(seed):
    assert _grades("ignore", seed) == [2, 0, 0, 0]


def test_negative_mode_draws_from_every_lower_grade():
    seen = {tuple(sorted(_grades("negative", s)[1:])) for s in range(50)}
    assert any(1 in s for s in seen) and any(0 in s for s in seen)
    assert all(_grades("negative", s)[0] == 2 for s in range(50))


def test_modes_fill_up_when_a_query_lacks_irrelevant_rows():
    g = {"query": ["q"], "texts": [["e", "p1", "p2", "p3"]], "pids": [[1, 2, 3, 4]], "grades": [[2, 1, 1, 1]]}
    for mode in ("graded", "ignore", "negative"):
        got = _grades(mode, 0, group=g)
        assert got[0] == 2 and sorted(got[1:]) == [1, 1, 1], mode
    # a partial-only query: its partials are its positives' pool, nothing is invented
    g = {"query": ["q"], "texts": [["p", "z"]], "pids": [[1, 2]], "grades": [[1, 0]]}
    assert _grades("graded", 0, group=g) == [1, 0]
