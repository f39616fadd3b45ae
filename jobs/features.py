"""Spark feature tables: product_features, taxonomy_neighbours, query_stats, ...

Thin entry point over `strata features`."""

from _entry import run

if __name__ == "__main__":
    run("features")
