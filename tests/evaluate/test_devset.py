"""The dev-set export streams the catalog: its BEIR files equal the in-memory build's, the catalog is read in
batches (never whole, never through Spark to the driver), and a bad lakehouse gets a clear error."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from strata.evaluate.devset import DevSetError, build_devset, export_devset, query_id
from strata.sources.beir import read_beir, write_beir
from strata.tables import Lakehouse, spec

PRODUCTS = [  # (source, product_id, title, description)
    ("shop", "p1", "Whirlpool Microwave", "Over the range, 1.9 cu. ft."),
    ("shop", "p2", "GE Microwave \"white\"", None),
    ("shop", "p3", None, "no title: the export keeps it with an empty title"),
    ("shop", "p4", "Bosch Dishwasher", "quiet\nstainless"),
    ("shop", "p5", "Hinge 3-Pack", ""),
    ("shop", "p6", "Patio Table", "ünïcode ✓"),
    ("other", "x1", "Another catalog's product", None),
]
LABELS = [  # (source, query_norm, product_id, grade, split)
    ("shop", "microwave", "p1", 2, "dev"),
    ("shop", "microwave", "p2", 1, "dev"),
    ("shop", "microwave", "p5", 0, "dev"),
    ("shop", "dishwasher", "p4", 2, "dev"),
    ("shop", "patio table", "p6", 2, "train"),
]


def _lakehouse(root, products=PRODUCTS, labels=LABELS) -> Lakehouse:
    p = [dict(product_id=pid, source=src, title=t, description=d, brand=None, category_id=None, attributes=[])
         for src, pid, t, d in products]
    lab = [dict(source=src, query=q, query_norm=q, product_id=pid, grade=g, raw_label=str(g), split=sp)
           for src, q, pid, g, sp in labels]
    write_deltalake(str(root / "products"), pa.Table.from_pylist(p, schema=spec("products").schema))
    write_deltalake(str(root / "labels"), pa.Table.from_pylist(lab, schema=spec("labels").schema))
    return Lakehouse(root)


def _files(folder) -> dict[str, object]:
    corpus = sorted((folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines())
    return {"corpus": corpus, "queries": (folder / "queries.jsonl").read_text(encoding="utf-8"),
            "qrels": (folder / "qrels" / "dev.tsv").read_text(encoding="utf-8")}


def test_streamed_export_equals_the_in_memory_build(spark, tmp_path, forbid_whole_reads):
    lh = _lakehouse(tmp_path / "lh")
    write_beir(build_devset(spark, lh, "shop"), tmp_path / "memory")
    seen = forbid_whole_reads("products")
    ex = export_devset(spark, lh, "shop", tmp_path / "streamed", batch_rows=2)

    assert _files(tmp_path / "streamed") == _files(tmp_path / "memory")
    assert (ex.queries, ex.docs, ex.judgments, ex.split) == (2, 6, 4, "dev")
    assert ex.meta == {"labels_version": 0, "products_version": 0}
    # the catalog came in batches of at most 2 rows, only the three columns the corpus needs
    batches = [rows for name, cols, rows in seen if name == "products"]
    assert sum(batches) == 6 and max(batches) <= 2
    assert {tuple(cols) for name, cols, _ in seen} == {("product_id", "title", "description")}
    ds = read_beir(tmp_path / "streamed", "dev")
    assert ds.qrels[query_id("microwave")] == {"p1": 2, "p2": 1, "p5": 0}
    assert ds.corpus["p3"] == {"title": "", "text": "no title: the export keeps it with an empty title"}
    assert ds.corpus["p6"]["text"] == "ünïcode ✓" and "x1" not in ds.corpus
    assert not list((tmp_path / "streamed").glob("*.part"))
    # labels are sorted before writing: a second export of the same lakehouse is byte-identical
    export_devset(spark, lh, "shop", tmp_path / "again", batch_rows=2)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/dev.tsv"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "streamed" / name).read_bytes()


def test_export_pins_the_products_version_it_reads(spark, tmp_path):
    lh = _lakehouse(tmp_path / "lh")
    extra = [dict(product_id="p9", source="shop", title="Added later", description=None, brand=None,
                  category_id=None, attributes=[])]
    write_deltalake(str(tmp_path / "lh" / "products"), pa.Table.from_pylist(extra, schema=spec("products").schema),
                    mode="append")
    ex = export_devset(spark, lh, "shop", tmp_path / "out")
    assert ex.docs == 7 and ex.meta["products_version"] == 1
    lines = [json.loads(x) for x in (tmp_path / "out" / "corpus.jsonl").read_text().splitlines()]
    assert "p9" in {x["_id"] for x in lines}


def test_export_errors_name_what_is_missing(spark, tmp_path):
    lh = _lakehouse(tmp_path / "a", labels=LABELS + [("shop", "sofa", "nope", 2, "dev")])
    with pytest.raises(DevSetError, match=r"1 labelled products of 'shop' are not in the catalog, e.g. \['nope'\]"):
        export_devset(spark, lh, "shop", tmp_path / "out-a")
    assert not (tmp_path / "out-a" / "corpus.jsonl").exists()
    assert not list((tmp_path / "out-a").glob("*.part"))

    with pytest.raises(DevSetError, match="no labels for source 'shop' split 'test'"):
        export_devset(spark, lh, "shop", tmp_path / "out-b", split="test")

    lh = _lakehouse(tmp_path / "c", products=[p for p in PRODUCTS if p[0] == "other"],
                    labels=[("shop", "q", "x1", 2, "dev")])
    with pytest.raises(DevSetError, match="no products in namespace 'shop'"):
        export_devset(spark, lh, "shop", tmp_path / "out-c")

    with pytest.raises(DevSetError, match="table 'labels' is missing"):
        export_devset(spark, Lakehouse(tmp_path / "empty"), "shop", tmp_path / "out-d")
