"""Look at one query's training examples: positives first, then negatives by source and similarity."""

from __future__ import annotations

import pandas as pd
import pyarrow.compute as pc

from strata.mine.job import SOURCE_PRIORITY
from strata.tables import Lakehouse
from strata.text import normalize_query


def query_examples(lakehouse: Lakehouse, query: str, catalog: str | None = None) -> pd.DataFrame:
    """Rows of ``training_examples`` for the normalised ``query`` with the product title attached."""
    from deltalake import DeltaTable

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
