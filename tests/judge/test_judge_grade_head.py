"""The distilled judge's grade head: lexical features by hand, and the by-query stack split."""

import numpy as np
import pytest

from strata.judge.grade_head import stack_split
from strata.judge.pair_features import FEATURE_NAMES, TokenStats, feature_matrix, pair_features


def test_pair_features_by_hand(tmp_path):
    stats = TokenStats.from_texts(["DEWALT 20V Cordless Drill", "Ryobi 18V Drill", "Garden Hose 50 ft"])
    f = dict(zip(FEATURE_NAMES, pair_features("dewalt 20v drill", "DEWALT 20V Cordless Drill", stats)))
    assert f["query_tokens"] == 3 and f["title_tokens"] == 4 and f["exact_cover"] == 1.0
    assert f["last_token_exact"] == 1.0 and f["brand_in_query"] == 1.0 and f["number_match"] == 1.0
    assert f["idf_cover"] == 1.0 and f["max_missing_idf"] == 0.0
    g = dict(zip(FEATURE_NAMES, pair_features("drill 18v", "Garden Hose 50 ft", stats)))
    assert g["exact_cover"] == 0.0 and g["number_match"] == 0.0 and g["idf_cover"] == 0.0
    # a misspelt word still matches by character trigrams
    h = dict(zip(FEATURE_NAMES, pair_features("cordles drill", "DEWALT 20V Cordless Drill", stats)))
    assert h["exact_cover"] == 0.5 and h["fuzzy_idf_cover"] > h["idf_cover"] + 0.2
    stats.save(tmp_path / "s.json")
    again = TokenStats.load(tmp_path / "s.json")
    assert np.array_equal(feature_matrix(["drill"], ["Ryobi 18V Drill"], stats),
                          feature_matrix(["drill"], ["Ryobi 18V Drill"], again))
    with pytest.raises(ValueError):
        feature_matrix(["a", "b"], ["x"], stats)


def test_stack_split_is_by_query():
    qs = [f"query {i}" for i in range(400)] * 2
    held = stack_split(qs, 0.25)
    assert held[:400].tolist() == held[400:].tolist()  # same query, same side
    assert 0.15 < held.mean() < 0.35
