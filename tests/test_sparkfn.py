"""The Spark UDFs give the Python functions' strings, row for row (including the nulls and blanks)."""

from strata.embed.stage import product_text
from strata.sparkfn import normalize_query_udf, product_text_udf
from strata.text import normalize_query

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
