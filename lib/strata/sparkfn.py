"""Spark UDFs of the library's own text functions, so Spark stages build exactly the strings the Python
stages do (product text for embedding and judging, normalised queries), and the one Spark-column form of a
stable per-key hash draw (``stable_hash_col``, ``hash_bucket``)."""

from __future__ import annotations

from typing import Any

from strata.text import normalize_query, product_text


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


_HASHES = ("xxhash64", "hash")  # Spark's 64-bit xxHash and 32-bit Murmur3


def stable_hash_col(*cols: Any, seed: Any = None, fn: str = "xxhash64") -> Any:
    """Spark column: ``fn([seed,] *cols)``, a stable hash of a row's key columns (names or columns); ``seed``
    (an int or str literal, hashed with its own type) makes independent draws; ``fn``: ``xxhash64`` (64 bits,
    the default) or ``hash`` (Spark's 32-bit Murmur3). The Spark counterpart of ``strata.text.stable_hash``:
    the same in every run, on Sail and on JVM Spark."""
    from pyspark.sql import functions as F

    if fn not in _HASHES:
        raise ValueError(f"fn must be one of {_HASHES} (got {fn!r})")
    return getattr(F, fn)(*(([F.lit(seed)] if seed is not None else []) + list(cols)))


def hash_bucket(*cols: Any, buckets: int, seed: Any = None, fn: str = "xxhash64") -> Any:
    """Spark column: ``pmod(stable_hash_col(*cols, seed=seed, fn=fn), buckets)``, a stable bucket in
    [0, buckets) per key (a query's mining pass, a per-query draw compared with ``rate * buckets``)."""
    from pyspark.sql import functions as F

    return F.pmod(stable_hash_col(*cols, seed=seed, fn=fn), F.lit(buckets))


def hash_bucket_sql(*exprs: str, buckets: int, seed: str | None = None, fn: str = "xxhash64") -> str:
    """``hash_bucket`` as Spark SQL text over SQL expressions (``seed`` too is SQL: ``"'13'"`` is the string
    13): ``pmod(fn([seed, ]*exprs), buckets)``, for stages written in SQL."""
    if fn not in _HASHES:
        raise ValueError(f"fn must be one of {_HASHES} (got {fn!r})")
    return f"pmod({fn}({', '.join(([seed] if seed is not None else []) + list(exprs))}), {int(buckets)})"
