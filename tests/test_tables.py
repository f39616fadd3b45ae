import pandas as pd
import pyarrow.compute as pc
import pytest

from strata.tables import TABLES, Lakehouse, empty_frame, spec


def test_every_table_has_keys_in_its_schema():
    for t in TABLES.values():
        assert t.keys and set(t.keys) <= set(t.schema.names), t.name


def test_unknown_table():
    with pytest.raises(KeyError, match="unknown table"):
        spec("nope")


def test_bad_format():
    with pytest.raises(ValueError, match="lakehouse.format"):
        Lakehouse("/tmp/x", "csv")


def test_write_read_roundtrip_and_versions(spark, tmp_path):
    lh = Lakehouse(tmp_path / "lh")
    frame = pd.DataFrame(
        {
            "product_id": ["1", "2"], "source": ["s", "s"], "title": ["a", "b"],
            "description": [None, "d"], "brand": [None, "B"], "category_id": ["c", None],
            "attributes": [[("color", "red")], []],
        }
    )
    lh.write(lh.to_spark(spark, "products", frame), "products")
    assert lh.version("products") == 0
    lh.write(lh.to_spark(spark, "products", frame.iloc[:1]), "products", mode="append")
    assert lh.version("products") == 1
    got = lh.read_arrow("products").to_pandas().sort_values("product_id")
    assert list(got["product_id"]) == ["1", "1", "2"]
    assert dict(got.iloc[0]["attributes"]) == {"color": "red"}
    assert lh.read(spark, "products", version=0).count() == 2
    assert lh.versions() == {"products": 1}


def test_specs_are_importable_from_tables_and_table_specs():
    import strata.table_specs as specs

    assert spec is specs.spec and TABLES is specs.TABLES and empty_frame is specs.empty_frame
    assert list(empty_frame("labels").columns) == ["source", "query", "query_norm", "product_id", "grade",
                                                   "raw_label", "split"]


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
def test_scan_batches_filters_and_bounds_batches(tmp_path, fmt, products_lakehouse):
    lh = products_lakehouse(tmp_path, 100, fmt)
    batches = list(lh.scan_batches("products", ["product_id", "source"], filter=pc.field("source") == "shop",
                                   batch_rows=7))
    assert all(b.num_rows <= 7 for b in batches)
    got = [p for b in batches for p in b.column("product_id").to_pylist()]
    assert len(got) == len(set(got)) == 75 and {s for b in batches for s in b.column("source").to_pylist()} == {"shop"}


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
def test_scan_frame_filters_masks_and_keeps_the_schema_when_empty(tmp_path, fmt, products_lakehouse):
    lh = products_lakehouse(tmp_path, 8, fmt)
    # i = 0..7: product_id p{i * 7919 % 8} = p0, p7, p6, p5, p4, p3, p2, p1; source other for i = 0, 4
    other = lh.scan_frame("products", ["product_id", "title"], filter=pc.field("source") == "other")
    assert sorted(zip(other["product_id"], other["title"])) == [("p0000", "title 0"), ("p0004", "title 4")]
    # keep: a per-batch mask on top of the filter (shop rows with an even i: i = 2, 6 -> p0006, p0002)
    even = lh.scan_frame("products", ["product_id", "title"], filter=pc.field("source") == "shop",
                         keep=lambda b: pc.match_substring_regex(b.column("title"), "[02468]$"))
    assert sorted(even["product_id"]) == ["p0002", "p0006"] and list(even.columns) == ["product_id", "title"]
    whole = lh.scan_frame("products")
    assert list(whole.columns) == spec("products").schema.names and len(whole) == 8
    none = lh.scan_frame("products", ["product_id", "description"], filter=pc.field("source") == "nowhere")
    assert none.empty and list(none.columns) == ["product_id", "description"]
    assert list(lh.scan_frame("products", filter=pc.field("source") == "nowhere").columns) == \
        spec("products").schema.names
