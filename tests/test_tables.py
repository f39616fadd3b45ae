import pandas as pd
import pytest

from strata.tables import TABLES, Lakehouse, spec


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
