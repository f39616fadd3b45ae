"""A tiny hand-made lakehouse for mining: one query, known categories, attributes and neighbours."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from strata.tables import spec

# Google-like taxonomy ids: 10 > {11 microwaves, 12 ranges}, 20 > {21 dishwashers}; 1 is the root of 10/20.
FEATURES = [  # product_id, title, category, attributes
    ("p1", "Whirlpool Over the Range Microwave in Stainless Steel", "11", {"colour": "stainless steel"}),
    ("p2", "GE Over the Range Microwave in White", "11", {"colour": "white"}),
    ("p3", "Samsung Countertop Microwave in Black", "11", {"colour": "black"}),
    ("p4", "Whirlpool 30 in. Gas Range in Stainless Steel", "12", {"colour": "stainless steel"}),
    ("p5", "GE 30 in. Electric Range in White", "12", {"colour": "white"}),
    ("p6", "Bosch 24 in. Dishwasher in Stainless Steel", "21", {"colour": "stainless steel"}),
    ("p7", "Hampton Bay Patio Table", "31", {}),
    ("p8", "Everbilt Door Hinge 3-Pack", "32", {}),
]
NEIGHBOURS = [("11", "12", "sibling"), ("12", "11", "sibling"), ("11", "21", "cousin"), ("12", "21", "cousin"),
              ("21", "11", "cousin"), ("31", "32", "sibling"), ("32", "31", "sibling")]


def tables() -> dict[str, pa.Table]:
    def t(name, rows):
        return pa.Table.from_pylist(rows, schema=spec(name).schema)

    return {
        "products": t("products", [dict(product_id=p, source="shop", title=ti, description=None, brand=None,
                                        category_id=None, attributes=[]) for p, ti, _, _ in FEATURES]),
        "product_features": t("product_features", [
            dict(source="shop", product_id=p, taxonomy_source="google", category_id=c, category_path=[c], depth=2,
                 category_origin="catalog", category_confidence=1.0, attributes=list(a.items()),
                 attribute_sources=[(k, "title") for k in a]) for p, _, c, a in FEATURES]),
        "taxonomy_neighbours": t("taxonomy_neighbours", [
            dict(source="google", category_id=a, neighbour_id=b, neighbour_name=b, relation=r) for a, b, r in NEIGHBOURS]),
        "query_attributes": t("query_attributes", [
            dict(source="shop", query_norm="stainless steel microwave", attributes=[("colour", "stainless steel")],
                 attribute_sources=[("colour", "query_text")])]),
        "labels": t("labels", [
            dict(source="shop", query="Stainless Steel Microwave", query_norm="stainless steel microwave",
                 product_id="p1", grade=2, raw_label="3", split="train"),
            dict(source="shop", query="Stainless Steel Microwave", query_norm="stainless steel microwave",
                 product_id="p8", grade=0, raw_label="1", split="train"),
            dict(source="shop", query="dev only query", query_norm="dev only query",
                 product_id="p6", grade=2, raw_label="3", split="dev"),
        ]),
    }


@pytest.fixture(params=["local", "s3"])
def mine_lakehouse(request, tmp_path) -> "Path | str":
    """The hand-made lakehouse in a local folder, and in a bucket of a real S3-compatible server (``s3_server``)."""
    from deltalake import write_deltalake

    if request.param == "s3":
        root = request.getfixturevalue("s3_server")(f"mine-{abs(hash(request.node.name)) % 10**8}") + "/lh"
    else:
        root = tmp_path / "lh"
    for name, table in tables().items():
        write_deltalake(f"{root}/{name}", table, mode="overwrite")
    return root


QUERIES = ["microwave", "stainless microwave", "white microwave", "black microwave", "gas range", "electric range",
           "range stainless", "dishwasher", "bosch dishwasher", "patio table", "door hinge", "hinge pack",
           "white range", "kitchen appliance"]


@pytest.fixture
def many_queries_lakehouse(tmp_path) -> Path:
    """The hand-made catalogue twice (catalogs ``shop`` and ``shop2``) with 14 train queries each, every query
    labelled on two products: enough queries to split mining into several hash buckets."""
    from deltalake import write_deltalake

    base = tables()
    root = tmp_path / "lh_many"
    labels, products, features = [], [], []
    for cat in ("shop", "shop2"):
        products += [dict(r, source=cat) for r in base["products"].to_pylist()]
        features += [dict(r, source=cat) for r in base["product_features"].to_pylist()]
        for i, q in enumerate(QUERIES):
            for j, g in ((i % 8, 2), ((i + 3) % 8, 0 if i % 3 else 1)):
                labels.append(dict(source=cat, query=q.title(), query_norm=q, product_id=FEATURES[j][0], grade=g,
                                   raw_label=str(g + 1), split="train"))
    out = {**base, "products": pa.Table.from_pylist(products, schema=spec("products").schema),
           "product_features": pa.Table.from_pylist(features, schema=spec("product_features").schema),
           "labels": pa.Table.from_pylist(labels, schema=spec("labels").schema)}
    for name, table in out.items():
        write_deltalake(str(root / name), table, mode="overwrite")
    return root
