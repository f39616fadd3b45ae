"""``strata mine inspect``'s reads (issue 10): one query's examples and only the products they name, with the
filter pushed down in either lakehouse format; the rows come out as before."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from strata.mine.inspect import query_examples
from strata.mine.job import SOURCE_PRIORITY
from strata.tables import Lakehouse, spec

from .conftest import tables

# (catalog, query, product_id, grade, source, rank, score)
EXAMPLES = [
    ("shop", "Stainless Steel Microwave", "p1", 2, "human", None, 0.9),
    ("shop", "Stainless Steel Microwave", "p8", 0, "human", None, 0.1),
    ("shop", "Stainless Steel Microwave", "p2", 0, "attribute_flip", None, 0.7),
    ("shop", "Stainless Steel Microwave", "p4", 0, "taxonomy_sibling", None, 0.6),
    ("shop", "Stainless Steel Microwave", "p3", 0, "ann", 3, 0.8),
    ("other", "Stainless Steel Microwave", "p1", 2, "human", None, 0.5),
    ("other", "Stainless Steel Microwave", "q9", 0, "random", None, 0.2),  # no such product: title null
    ("shop", "gas range", "p4", 2, "human", None, 0.9),
    ("shop", "gas range", "p5", 0, "ann", 1, 0.8),
] + [("shop", f"query {i}", f"p{i % 8 + 1}", 1, "human", None, 0.5) for i in range(30)]


def _lakehouse(root, fmt: str) -> Lakehouse:
    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    from strata.text import normalize_query

    t = tables()
    # the same product ids in a second catalog, with other titles
    other = pa.Table.from_pylist([dict(product_id=p, source="other", title=f"other {p}", description=None,
                                       brand=None, category_id=None, attributes=[]) for p in ("p1", "p2", "p3")],
                                 schema=spec("products").schema)
    t["products"] = pa.concat_tables([t["products"], other])
    t["training_examples"] = pa.Table.from_pylist(
        [dict(catalog=c, query=q, query_norm=normalize_query(q), product_id=p, grade=g, source=s, mined_from=None,
              rank=r, score=sc, positive_score=0.9, judge_grade=None, judge_p2=None, judge_id=None, model_id="m",
              synthetic=False) for c, q, p, g, s, r, sc in EXAMPLES], schema=spec("training_examples").schema)
    for name in ("products", "training_examples"):
        table = t[name]
        if fmt == "delta":
            for s in range(0, table.num_rows, 10):  # several files
                write_deltalake(str(root / name), table.slice(s, 10), mode="append")
        else:
            (root / name).mkdir(parents=True)
            pq.write_table(table, str(root / name / "part-0.parquet"), row_group_size=7)
    return Lakehouse(root, fmt)


def _old_query_examples(lakehouse: Lakehouse, query: str, catalog: str | None = None) -> pd.DataFrame:
    """query_examples before issue 10 (parquet: whole training_examples; both: whole products)."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from strata.text import normalize_query

    qn = normalize_query(query)
    if lakehouse.format == "delta":
        tbl = DeltaTable(str(lakehouse.path("training_examples"))).to_pyarrow_dataset()
        rows = tbl.to_table(filter=pc.field("query_norm") == qn).to_pandas()
    else:
        rows = lakehouse.read_arrow("training_examples").to_pandas()
        rows = rows[rows["query_norm"] == qn]
    if catalog:
        rows = rows[rows["catalog"] == catalog]
    if rows.empty:
        return rows.assign(title=pd.Series(dtype=str))
    prods = lakehouse.read_arrow("products", columns=["source", "product_id", "title"]).to_pandas()
    prods = prods[prods["product_id"].isin(set(rows["product_id"]))]
    rows = rows.merge(prods, left_on=["catalog", "product_id"], right_on=["source", "product_id"], how="left",
                      suffixes=("", "_p")).drop(columns=["source_p"])
    prio = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    rows = rows.assign(_p=rows["source"].map(prio)).sort_values(["grade", "_p", "score"],
                                                                ascending=[False, True, False])
    return rows.drop(columns="_p").reset_index(drop=True)


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
def test_query_examples_read_one_query_and_its_products(tmp_path, monkeypatch, fmt, forbid_whole_reads):
    lh = _lakehouse(tmp_path, fmt)
    cases = [("  STAINLESS steel Microwave ", None, 7), ("stainless steel microwave", "shop", 5),
             ("stainless steel microwave", "other", 2), ("gas range", None, 2), ("no such query", None, 0)]
    want = {(q, c): _old_query_examples(lh, q, c) for q, c, _ in cases}
    seen = forbid_whole_reads("products", "training_examples")
    for q, c, n in cases:
        seen.clear()
        got = query_examples(lh, q, c)
        assert len(got) == n
        if n:
            pd.testing.assert_frame_equal(got, want[(q, c)])
        else:  # no rows: the same (empty) columns
            assert list(got.columns) == list(want[(q, c)].columns)
        ex_rows = sum(r for name, _, r in seen if name == "training_examples")
        prod_rows = sum(r for name, _, r in seen if name == "products")
        assert ex_rows == n  # the query's (and catalog's) rows only, never the other 32 queries'
        # only products the rows name (ids x catalogs; q9 does not exist), never the whole catalog
        assert got["title"].notna().sum() <= prod_rows <= got["product_id"].nunique() * got["catalog"].nunique()
        assert all(cols == ["source", "product_id", "title"] for name, cols, _ in seen if name == "products")
    got = query_examples(lh, "stainless steel microwave")
    assert got.iloc[0]["product_id"] == "p1" and got.iloc[0]["title"].startswith(("Whirlpool", "other"))
    assert dict(zip(got["catalog"] + "/" + got["product_id"], got["title"]))["other/p1"] == "other p1"
