"""Seed examples: train-split human labels + engagement pairs of train-split queries, on a hand-made lakehouse."""

from __future__ import annotations

import pyarrow as pa

from strata.config_base import SplitConfig
from strata.mine.seeds import seed_examples
from strata.tables import Lakehouse, spec
from strata.text import split_of


def test_engagement_seeds_follow_the_label_split_and_clicks(spark, tmp_path):
    from deltalake import write_deltalake

    split = SplitConfig()
    queries = [f"query number {i}" for i in range(60)]
    train = {q for q in queries if split_of(q, split.dev_fraction, split.salt) == "train"}
    assert 0 < len(train) < len(queries)  # both splits present
    eng = [dict(source="bestbuy-small", query_norm=q, product_id=f"p{i % 5}", impressions=None, clicks=1 + i % 3,
                add_to_carts=None, purchases=None) for i, q in enumerate(queries)]
    eng.append(dict(source="bestbuy-small", query_norm="query number 0", product_id="p9", impressions=None,
                    clicks=0, add_to_carts=None, purchases=None))  # no click: no seed
    write_deltalake(str(tmp_path / "query_product_engagement"),
                    pa.Table.from_pylist(eng, schema=spec("query_product_engagement").schema))
    first = sorted(train)[0]
    write_deltalake(str(tmp_path / "labels"), pa.Table.from_pylist([
        dict(source="bestbuy", query=first.title(), query_norm=first, product_id=f"p{queries.index(first) % 5}",
             grade=0, raw_label="1", split="train")], schema=spec("labels").schema))

    got = seed_examples(spark, Lakehouse(tmp_path), split, exact_clicks=2).toPandas()
    assert set(got["query_norm"]) == train
    assert set(got["catalog"]) == {"bestbuy"} and "p9" not in set(got["product_id"])
    eng_rows = got[got["origin"] == "engagement"].set_index("query_norm")
    for i, q in enumerate(queries):
        if q in train and q != first:
            assert eng_rows.loc[q, "grade"] == (2 if 1 + i % 3 >= 2 else 1), q
    # the human label wins over the engagement pair of the same (catalog, query, product)
    assert got[got["query_norm"] == first][["origin", "grade"]].values.tolist() == [["human", 0]]
