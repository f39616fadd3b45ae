"""A tiny hand-computable lakehouse for the features job, written without Spark (pyarrow / delta-rs), so
the same fixture feeds the Sail (Delta) tests and the classic JVM Spark (parquet) test."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from strata.tables import spec

BB = [("cat00000", None, "Best Buy", ["Best Buy"]),
      ("c1", "cat00000", "Video Games", ["Best Buy", "Video Games"]),
      ("c2", "cat00000", "Computers", ["Best Buy", "Computers"]),
      ("c11", "c1", "Xbox 360", ["Best Buy", "Video Games", "Xbox 360"]),
      ("c12", "c1", "PS3", ["Best Buy", "Video Games", "PS3"]),
      ("c21", "c2", "Laptops", ["Best Buy", "Computers", "Laptops"]),
      ("c111", "c11", "Xbox 360 Games", ["Best Buy", "Video Games", "Xbox 360", "Xbox 360 Games"]),
      ("c121", "c12", "PS3 Games", ["Best Buy", "Video Games", "PS3", "PS3 Games"]),
      ("c211", "c21", "Gaming Laptops", ["Best Buy", "Computers", "Laptops", "Gaming Laptops"])]
GOOGLE = [("1", None, "Hardware", ["Hardware"]),
          ("2", None, "Home & Garden", ["Home & Garden"]),
          ("3", "2", "Kitchen & Dining", ["Home & Garden", "Kitchen & Dining"]),
          ("4", "3", "Kitchen Appliances", ["Home & Garden", "Kitchen & Dining", "Kitchen Appliances"]),
          ("5", "4", "Microwave Ovens", ["Home & Garden", "Kitchen & Dining", "Kitchen Appliances",
                                         "Microwave Ovens"])]
HD_TITLES = {
    "2001": "Whirlpool 1.9 cu. ft. Over the Range Microwave in Stainless Steel",
    "2002": "Whirlpool 30 in. Gas Range in White",
    "2003": "Whirlpool 24 in. Dishwasher in Black",
    "2004": "Whirlpool 25 cu. ft. Refrigerator",
    "2005": "Whirlpool Dryer Vent Kit",
    "2006": "Everbilt 3-1/2 in. x 5/8 in. Satin Nickel Door Hinge (3-Pack)",
    "2007": "Hampton Bay 48 in. x 30 in. Cedar Wood Patio Table",
    **{f"30{i}": f"Home Decorators Collection Item {i}" for i in range(5)},
    "3100": "Home Styles Kitchen Cart",
}


def _products():
    rows = [
        dict(product_id="1001", source="bestbuy", title="Gears of War 3 - Xbox 360", description=None,
             brand="Microsoft", category_id="c111", attributes=[("color", "Black")]),
        dict(product_id="1002", source="bestbuy", title="Battlefield 3 - PlayStation 3", description=None,
             brand="EA", category_id="c121", attributes=[]),
        dict(product_id="1003", source="bestbuy", title='Razer Blade 17.3" Gaming Laptop', description=None,
             brand="Razer", category_id="c211", attributes=[]),
    ]
    rows += [dict(product_id=k, source="homedepot", title=v, description=None, brand=None, category_id=None,
                  attributes=[]) for k, v in HD_TITLES.items()]
    return rows


def _events():
    def ev(i, sess, q, kind, pid, day=14, minute=0):
        ts = datetime(2011, 9, day, 12, minute)
        return dict(event_id=f"e{i}", source="bestbuy-small", ts=ts, session_id=sess, user_id="u" + sess,
                    query=q.upper(), query_norm=q, product_id=pid, event_type=kind, position=None,
                    event_date=ts.date())
    return [
        ev(1, "s1", "gears of war 3", "search", None), ev(2, "s1", "gears of war 3", "click", "1001", minute=1),
        ev(3, "s2", "gears of war 3", "search", None), ev(4, "s2", "gears of war 3", "click", "1001", minute=1),
        ev(5, "s3", "gears of war 3", "search", None),
        ev(6, "s4", "battlefield 3", "search", None), ev(7, "s4", "battlefield 3", "click", "1002", minute=1),
        ev(8, "s5", "laptop", "search", None, day=15),
    ]


def fixture_tables() -> dict[str, pa.Table]:
    tax = [dict(category_id=c, source="bestbuy", parent_id=p, name=n, path=path, depth=len(path))
           for c, p, n, path in BB]
    tax += [dict(category_id=c, source="google", parent_id=p, name=n, path=path, depth=len(path))
            for c, p, n, path in GOOGLE]
    labels = [dict(source="homedepot", query="Black 3-pack Whirlpool microwave 30 in.",
                   query_norm="black 3-pack whirlpool microwave 30 in.", product_id="2001", grade=2, raw_label="3",
                   split="train"),
              dict(source="homedepot", query="cedar 2x4", query_norm="cedar 2x4", product_id="2007", grade=1,
                   raw_label="2.33", split="dev")]
    cats = [dict(source="homedepot", product_id="2001", taxonomy_source="google", category_id="5",
                 candidate_id="5", confidence=0.62, margin=0.1, status="assigned", reason=None, model="m"),
            dict(source="homedepot", product_id="2006", taxonomy_source="google", category_id=None,
                 candidate_id="1", confidence=0.3, margin=0.01, status="low_confidence",
                 reason="confidence 0.300 < threshold 0.45", model="m")]
    data = {"taxonomy": tax, "products": _products(), "search_events": _events(), "labels": labels,
            "product_categories": cats}
    return {name: pa.Table.from_pylist(rows, schema=spec(name).schema) for name, rows in data.items()}


def write_fixture(root: Path, fmt: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, table in fixture_tables().items():
        if fmt == "delta":
            from deltalake import write_deltalake

            write_deltalake(str(root / name), table, mode="overwrite")
        else:
            (root / name).mkdir()
            pq.write_table(table, str(root / name / "part-0.parquet"))
    return root


@pytest.fixture
def features_lakehouse(tmp_path):
    return lambda fmt="delta": write_fixture(tmp_path / f"lh-{fmt}", fmt)


__all__ = ["write_fixture", "fixture_tables", "date"]
