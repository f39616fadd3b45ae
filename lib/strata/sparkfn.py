"""Spark UDFs of the library's own text functions, so Spark stages build exactly the strings the Python
stages do (product text for embedding and judging, normalised queries)."""

from __future__ import annotations

from typing import Any

from strata.embed.stage import product_text
from strata.text import normalize_query


def product_text_udf() -> Any:
    """``product_text(title, description)``: the text a product is embedded and judged by."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    return F.udf(lambda t, d: product_text(t, d), T.StringType())  # noqa: PLW0108 (no type hints: plain UDF)


def normalize_query_udf() -> Any:
    """``normalize_query(query)``: the key every table joins queries on."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    return F.udf(lambda s: normalize_query(s), T.StringType())  # noqa: PLW0108 (no type hints: plain UDF)


def split_udf(dev_fraction: float, salt: str) -> Any:
    """``split_of(query_norm, dev_fraction, salt)``: 'dev' or 'train', the same hash split the source adapters
    give labels, computed where the rows are instead of collecting the distinct queries to the driver."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from strata.text import split_of

    return F.udf(lambda q: split_of(q, dev_fraction, salt) if q else None, T.StringType())
