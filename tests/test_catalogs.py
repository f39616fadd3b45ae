"""Labels/search-log source -> catalog (``products.source``): one map, in Python, Spark SQL and Spark columns."""

from strata.catalogs import CATALOG_OF, catalog_col, catalog_of, catalog_pairs_sql, catalog_sql


def test_catalog_of_maps_bestbuy_small_and_leaves_the_rest():
    assert CATALOG_OF == {"bestbuy-small": "bestbuy"}
    assert catalog_of("bestbuy-small") == "bestbuy"
    for same in ("bestbuy", "homedepot", "wands", "beir", "esci", "shop"):  # a catalog, or an unknown source
        assert catalog_of(same) == same


def test_catalog_sql_text():
    assert catalog_sql("e.source") == "CASE e.source WHEN 'bestbuy-small' THEN 'bestbuy' ELSE e.source END"
    assert catalog_pairs_sql() == ("SELECT * FROM VALUES ('bestbuy-small', 'bestbuy') "
                                   "AS m(event_source, product_source)")


def test_spark_forms_agree_with_catalog_of(spark):
    sources = ["bestbuy-small", "bestbuy", "homedepot", "x", None]
    df = spark.createDataFrame([(s,) for s in sources], "source string")
    df.createOrReplaceTempView("catalogs_test")
    by_col = [r["c"] for r in df.select(catalog_col("source").alias("c")).collect()]
    by_sql = [r["c"] for r in spark.sql(f"SELECT {catalog_sql('source')} AS c FROM catalogs_test").collect()]
    assert by_col == by_sql == ["bestbuy", "bestbuy", "homedepot", "x", None]
