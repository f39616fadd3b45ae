"""Real data: the Best Buy catalog's own category paths reach product_features (hand-checked SKUs), and
query features come out of the real click log."""

from __future__ import annotations

import pytest

from strata.features.job import run_features
from strata.ingest.run import ingest_source
from strata.tables import Lakehouse

# sku -> (title, category path) read off small_product_data.xml by hand
EXPECTED = {
    "1004622": ("Sniper: Ghost Warrior - Xbox 360", ["Best Buy", "Video Games", "Xbox 360", "Xbox 360 Games"]),
    "2633149": ("Rocksmith Best Buy Exclusive Edition - PlayStation 3",
                ["Best Buy", "Video Games", "PlayStation 3", "PS3 Games"]),
    "2678108": ("Operation Flashpoint: Red River - Xbox 360",
                ["Best Buy", "Video Games", "Xbox 360", "Xbox 360 Games", "Shooters"]),
}


@pytest.mark.integration
def test_bestbuy_products_carry_real_paths(engines, data_root, tmp_path):
    lh = Lakehouse(tmp_path / "lh")
    ingest_source("bestbuy-small", data_root / "bestbuy-small", engines=engines, lakehouse=lh, run_id="r1",
                  limit=3000)
    run_features(engines.spark, lh, "f1")
    pf = {r["product_id"]: r for r in lh.read_arrow("product_features").to_pylist() if r["source"] == "bestbuy"}
    titles = {r["product_id"]: r["title"] for r in lh.read_arrow("products").to_pylist()}
    for sku, (title, path) in EXPECTED.items():
        assert titles[sku] == title
        assert pf[sku]["category_path"] == path and pf[sku]["depth"] == len(path)
        assert pf[sku]["category_origin"] == "catalog"
    assert sum(r["category_path"] is not None for r in pf.values()) / len(pf) > 0.99
    stats = {r["query_norm"]: r for r in lh.read_arrow("query_stats").to_pylist()}
    assert {r["segment"] for r in stats.values()} == {"head", "torso", "tail"}
    assert all(0 <= r["zero_click_rate"] <= 1 for r in stats.values())
