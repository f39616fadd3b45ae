"""Look at one query's training examples: positives first, then negatives by source and similarity."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from strata.mine.job import SOURCE_PRIORITY
from strata.tables import Lakehouse
from strata.text import normalize_query


def query_examples(lakehouse: Lakehouse, query: str, catalog: str | None = None) -> pd.DataFrame:
    """Rows of ``training_examples`` for the normalised ``query`` with the product title attached.

    Both tables are read with the filter pushed down (either lakehouse format): the query's (and catalog's)
    examples, then only the products those examples name.
    """
    qn = normalize_query(query)
    want = pc.field("query_norm") == qn
    if catalog:
        want = want & (pc.field("catalog") == catalog)
    rows = lakehouse.scan_frame("training_examples", filter=want)
    if rows.empty:
        return rows.assign(title=pd.Series(dtype=str))
    ids = pa.array(pd.unique(rows["product_id"]), type=pa.string(), from_pandas=True)
    cats = pa.array(pd.unique(rows["catalog"]), type=pa.string(), from_pandas=True)
    prods = lakehouse.scan_frame("products", ["source", "product_id", "title"],
                                 filter=pc.field("product_id").isin(ids) & pc.field("source").isin(cats))
    rows = rows.merge(prods, left_on=["catalog", "product_id"], right_on=["source", "product_id"], how="left",
                      suffixes=("", "_p")).drop(columns=["source_p"])
    prio = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    rows = rows.assign(_p=rows["source"].map(prio)).sort_values(["grade", "_p", "score"],
                                                                ascending=[False, True, False])
    return rows.drop(columns="_p").reset_index(drop=True)
