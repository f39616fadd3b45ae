"""The Spark UDFs give the Python functions' strings, row for row (including the nulls and blanks)."""

from strata.sparkfn import normalize_query_udf, product_text_udf
from strata.text import normalize_query, product_text

ROWS = [("DEWALT Drill", "20V  cordless\tkit"), (None, "only a description"), ("Only a title", None), (None, None),
        ("", ""), ("  Padded  ", " text\n")]


def test_udfs_match_the_python_functions(spark):
    df = spark.createDataFrame(ROWS, "title string, description string")
    got = df.select(product_text_udf()("title", "description").alias("t"),
                    normalize_query_udf()("title").alias("q")).collect()
    assert [r["t"] for r in got] == [product_text(t, d) for t, d in ROWS]
    assert [r["q"] for r in got] == [normalize_query(t) for t, _ in ROWS]


def test_split_udf_matches_split_of(spark):
    from strata.sparkfn import split_udf
    from strata.text import split_of

    qs = [f"cordless drill {i}" for i in range(200)] + ["Ünïcode  Query"]
    got = spark.createDataFrame([(q,) for q in qs], "q string").select(
        split_udf(0.3, "salt-x")("q").alias("s")).collect()
    want = [split_of(q, 0.3, "salt-x") for q in qs]
    assert [r["s"] for r in got] == want and {"dev", "train"} == set(want)


def test_hash_columns_give_the_old_formulas_values(spark):
    """``hash_bucket`` / ``stable_hash_col`` against the hand-written columns they replaced (mine/job.py
    ``_bucket``, train/groups.py's spelling draw, ``order`` and synthetic pick): the same bucket per query."""
    from pyspark.sql import functions as F

    from strata.sparkfn import hash_bucket, stable_hash_col

    rows = [("shop", "cordless drill"), ("shop", "deck over"), ("bestbuy", "xbox 360"), ("bestbuy", "")]
    df = spark.createDataFrame(rows, "catalog string, query_norm string").withColumn("kind", F.lit("real"))
    got = df.select(
        hash_bucket("catalog", "query_norm", buckets=7).cast("int").alias("b"),
        F.pmod(F.xxhash64("catalog", "query_norm"), F.lit(7)).cast("int").alias("old_b"),
        hash_bucket("catalog", "query_norm", buckets=1_000_000, seed=13).alias("d"),
        F.pmod(F.xxhash64(F.lit(13), "catalog", "query_norm"), F.lit(1_000_000)).alias("old_d"),
        stable_hash_col("catalog", "query_norm", "kind", seed=13).alias("o"),
        F.xxhash64(F.lit(13), "catalog", "query_norm", "kind").alias("old_o"),
        stable_hash_col("catalog", "query_norm").alias("h"), F.xxhash64("catalog", "query_norm").alias("old_h"),
    ).collect()
    for r in got:
        assert (r["b"], r["d"], r["o"], r["h"]) == (r["old_b"], r["old_d"], r["old_o"], r["old_h"])
        assert 0 <= r["b"] < 7 and 0 <= r["d"] < 1_000_000
    assert len({r["o"] for r in got}) == 4  # four keys, four hashes


def test_hash_bucket_sql_is_the_structured_routes_old_text_and_matches_the_column(spark):
    """mine/structured.py's random route wrote ``pmod(hash('<seed>', 'bucket', x), n)`` by hand: the SQL form
    gives that text, and the column form with ``fn="hash"`` the same buckets."""
    import pytest
    from pyspark.sql import functions as F

    from strata.sparkfn import hash_bucket, hash_bucket_sql

    sql = hash_bucket_sql("'bucket'", "product_id", buckets=64, seed="'13'", fn="hash")
    assert sql == "pmod(hash('13', 'bucket', product_id), 64)"
    assert hash_bucket_sql("catalog", "query_norm", buckets=7) == "pmod(xxhash64(catalog, query_norm), 7)"
    with pytest.raises(ValueError, match="fn must be"):
        hash_bucket_sql("x", buckets=2, fn="md5")
    df = spark.createDataFrame([(f"p{i}",) for i in range(50)], "product_id string")
    got = df.select(F.expr(sql).alias("a"), hash_bucket(F.lit("bucket"), "product_id", buckets=64, seed="13",
                                                        fn="hash").alias("b")).collect()
    assert all(r["a"] == r["b"] for r in got) and len({r["a"] for r in got}) > 10
