"""The features job on a hand-computable lakehouse (embedded Sail, Delta): every number below is worked out
by hand from tests/features/conftest.py."""

from __future__ import annotations

import pytest

from strata.features.job import MissingInputError, run_features
from strata.tables import Lakehouse

FEATURE_TABLES = ("product_features", "taxonomy_neighbours", "query_stats", "query_product_engagement",
                  "query_attributes")


def _rows(lh, name, key):
    return {tuple(r[k] for k in key): r for r in lh.read_arrow(name).to_pylist()}


def _content(lh):
    return {n: sorted(map(repr, lh.read_arrow(n).to_pylist())) for n in FEATURE_TABLES}


@pytest.fixture
def built(spark, features_lakehouse):
    lh = Lakehouse(features_lakehouse("delta"))
    result = run_features(spark, lh, "f1")
    return lh, result


def test_product_categories_and_paths(built):
    lh, _ = built
    pf = _rows(lh, "product_features", ("source", "product_id"))
    gears = pf[("bestbuy", "1001")]
    assert gears["category_path"] == ["Best Buy", "Video Games", "Xbox 360", "Xbox 360 Games"]
    assert (gears["depth"], gears["category_origin"], gears["category_confidence"]) == (4, "catalog", 1.0)
    micro = pf[("homedepot", "2001")]
    assert micro["category_path"][-1] == "Microwave Ovens" and micro["taxonomy_source"] == "google"
    assert (micro["category_origin"], micro["category_confidence"]) == ("embedding", 0.62)
    hinge = pf[("homedepot", "2006")]  # below threshold: unassigned, never guessed
    assert hinge["category_id"] is None and hinge["category_path"] is None
    assert (hinge["category_origin"], hinge["category_confidence"]) == ("unassigned", 0.3)
    assert pf[("homedepot", "2002")]["category_origin"] is None  # not enriched at all


def test_attributes_with_sources(built):
    lh, _ = built
    pf = _rows(lh, "product_features", ("source", "product_id"))
    a = lambda pid, src="homedepot": (dict(pf[(src, pid)]["attributes"]),  # noqa: E731
                                     dict(pf[(src, pid)]["attribute_sources"]))
    attrs, srcs = a("2001")
    assert attrs == {"brand": "Whirlpool", "colour": "stainless steel", "material": "stainless steel",
                     "size": "1.9 cu ft"}
    assert srcs == {"brand": "title_prefix", "colour": "title", "material": "title", "size": "title"}
    attrs, srcs = a("2006")
    assert attrs == {"size": "3-1/2 in", "dimensions": "3-1/2 in. x 5/8 in.", "pack_count": "3",
                     "colour": "satin nickel"}
    assert "brand" not in attrs  # Everbilt starts only one title: not a brand by the prefix rule
    attrs, srcs = a("2007")
    assert attrs["dimensions"] == "48 in. x 30 in." and attrs["material"] == "cedar"
    assert a("300")[0] == {"brand": "Home Decorators"}  # "Home" alone is a common word, never a brand
    assert a("3100")[0] == {}  # "Home Styles" starts only one title
    attrs, srcs = a("1001", "bestbuy")
    assert attrs == {"brand": "Microsoft", "colour": "Black"}
    assert srcs == {"brand": "catalog", "colour": "catalog"}


def test_taxonomy_neighbours(built):
    lh, _ = built
    nb = {}
    for r in lh.read_arrow("taxonomy_neighbours").to_pylist():
        nb.setdefault((r["source"], r["category_id"]), set()).add((r["neighbour_id"], r["relation"]))
    assert nb[("bestbuy", "c111")] == {("c121", "cousin")}
    assert nb[("bestbuy", "c11")] == {("c12", "sibling"), ("c21", "cousin")}
    assert nb[("bestbuy", "c1")] == {("c2", "sibling")}
    assert ("bestbuy", "cat00000") not in nb
    assert nb[("google", "1")] == {("2", "sibling")}


def test_query_stats_and_segments(built):
    lh, _ = built
    qs = _rows(lh, "query_stats", ("source", "query_norm"))
    g = qs[("bestbuy-small", "gears of war 3")]
    assert (g["searches"], g["sessions"], g["clicks"]) == (3, 3, 2)
    assert g["ctr"] == pytest.approx(2 / 3) and g["zero_click_rate"] == pytest.approx(1 / 3)
    assert g["segment"] == "head" and g["top_categories"] == ["c111"]
    b = qs[("bestbuy-small", "battlefield 3")]
    assert (b["searches"], b["clicks"], b["ctr"], b["zero_click_rate"], b["segment"]) == (1, 1, 1.0, 0.0, "torso")
    lap = qs[("bestbuy-small", "laptop")]
    assert (lap["clicks"], lap["zero_click_rate"], lap["segment"], lap["top_categories"]) == (0, 1.0, "tail", [])


def test_engagement_is_null_where_not_logged(built):
    lh, _ = built
    qpe = _rows(lh, "query_product_engagement", ("source", "query_norm", "product_id"))
    assert set(qpe) == {("bestbuy-small", "gears of war 3", "1001"), ("bestbuy-small", "battlefield 3", "1002")}
    r = qpe[("bestbuy-small", "gears of war 3", "1001")]
    assert (r["impressions"], r["clicks"], r["add_to_carts"], r["purchases"]) == (None, 2, None, None)


def test_query_attributes(built):
    lh, _ = built
    qa = _rows(lh, "query_attributes", ("source", "query_norm"))
    r = qa[("homedepot", "black 3-pack whirlpool microwave 30 in.")]
    assert dict(r["attributes"]) == {"brand": "whirlpool", "colour": "black", "size": "30 in", "pack_count": "3"}
    assert dict(r["attribute_sources"])["brand"] == "brand_lexicon"
    assert dict(qa[("homedepot", "cedar 2x4")]["attributes"]) == {"material": "cedar"}
    assert dict(qa[("bestbuy-small", "laptop")]["attributes"]) == {}


def test_rerun_is_identical_and_logged(built, spark):
    lh, first = built
    before = _content(lh)
    versions = {n: lh.version(n) for n in FEATURE_TABLES}
    run_features(spark, lh, "f2")
    assert _content(lh) == before
    assert all(lh.version(n) == versions[n] + 1 for n in FEATURE_TABLES)
    log = [r for r in lh.read_arrow("run_log").to_pylist() if r["job"] == "features"]
    assert len(log) == 10 and all(r["read"] == r["accepted"] + r["quarantined"] for r in log)
    assert {r["target_table"]: r["upserted"] for r in log if r["run_id"] == "f1"}["query_stats"] == 3


def test_missing_required_input_fails_loudly(spark, tmp_path):
    with pytest.raises(MissingInputError, match="required input table 'products' not found"):
        run_features(spark, Lakehouse(tmp_path / "empty"), "x")
