"""Best Buy small: click log -> search/click events, catalog XML -> products + taxonomy."""

from __future__ import annotations

import datetime as dt
import gzip
import zipfile

import pytest

from strata.sources.base import SourceSchemaError, stable_id
from strata.sources.bestbuy_small import load_bestbuy_small

LOG_HEADER = "user,sku,category,query,click_time,query_time\n"
TRAIN = [
    "u1,1004622,abcat0701002,Gears of War 3,2011-09-14 12:46:28.66,2011-09-14 12:45:07.064",
    "u1,2945052,abcat0701002,Gears of War 3,2011-09-14 12:47:00.1,2011-09-14 12:45:07.064",  # same search
    "u2,,abcat0701002,halo,2011-09-15 10:00:00,2011-09-15 09:59:00",  # no sku
    "u3,1004622,abcat0701002,call of duty,not a time,2011-09-16 10:00:00",  # bad click_time
    "u4,1004622,abcat0701002,   ,2011-09-16 10:00:00,2011-09-16 09:00:00",  # blank query
]
TEST = ["u5,2945052,abcat0701002,Modern warfare 3,2011-10-23 17:55:08.626,2011-10-23 17:54:57.281"]
UNLABELED = [
    'u6,abcat0701002,"child eden","2011-09-02 13:05:24.146","2011-09-02 13:04:34.633"',
    'u7,abcat0701002,"bad","2011-09-02 13:05:24.146","yesterday"',
]

PRODUCT = """  <product>
    <sku>{sku}</sku>
    <name>{name}</name>
    <type>Game</type>
    <regularPrice>19.99</regularPrice>
    <planPrice />
    <categoryPath>
      <category><id>cat00000</id><name>Best Buy</name></category>
      <category><id>abcat0700000</id><name>Video Games</name></category>
      <category><id>abcat0701000</id><name>Xbox 360</name></category>
      <category><id>abcat0701002</id><name>Xbox 360 Games</name></category>
    </categoryPath>
    <shortDescription>Short one</shortDescription>
    <longDescription>Your aim is sure &#151; you are a &lt;b&gt;Ghost&lt;/b&gt; Warrior.</longDescription>
    <manufacturer>City Interactive</manufacturer>
    <class>VIDEO GAME SOFTWARE</class>
    <platform>Xbox 360</platform>
  </product>
"""


def catalog_xml(*products: tuple[str, str], prolog: str = "") -> bytes:
    body = "".join(PRODUCT.format(sku=s, name=n) for s, n in products)
    return f"{prolog}<products>\n{body}</products>\n".encode()


def make_folder(tmp_path, *, xml: bytes | None = None):
    folder = tmp_path / "bestbuy-small"
    folder.mkdir()
    (folder / "train.csv.gz").write_bytes(gzip.compress((LOG_HEADER + "\n".join(TRAIN) + "\n").encode()))
    (folder / "test.csv").write_text(LOG_HEADER + "\n".join(TEST) + "\n")
    (folder / "queries_unlabeled.csv").write_text(
        "user,category,query,click_time,query_time\n" + "\n".join(UNLABELED) + "\n"
    )
    if xml is None:
        sniper = ("1004622", "Sniper: Ghost Warrior - Xbox 360")
        xml = catalog_xml(sniper, sniper, ("2945052", ""))
    with zipfile.ZipFile(folder / "small_product_data.xml.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("small_product_data.xml", xml)
    return folder


def test_events_from_the_logs(tmp_path):
    data = load_bestbuy_small(make_folder(tmp_path))
    ev = data.tables["search_events"]
    got = [(r.event_type, r.user_id, r.query, r.product_id, r.ts) for r in ev.itertuples()]
    t = dt.datetime.fromisoformat
    assert got == [
        ("search", "u1", "Gears of War 3", None, t("2011-09-14 12:45:07.064")),
        ("click", "u1", "Gears of War 3", "1004622", t("2011-09-14 12:46:28.660")),
        ("search", "u1", "Gears of War 3", None, t("2011-09-14 12:45:07.064")),
        ("click", "u1", "Gears of War 3", "2945052", t("2011-09-14 12:47:00.100")),
        ("search", "u5", "Modern warfare 3", None, t("2011-10-23 17:54:57.281")),
        ("click", "u5", "Modern warfare 3", "2945052", t("2011-10-23 17:55:08.626")),
        ("search", "u6", "child eden", None, t("2011-09-02 13:04:34.633")),
    ]
    # the two rows of one search give the same search event (ids are content hashes) and one session
    assert ev["event_id"].iloc[0] == ev["event_id"].iloc[2] and ev["event_id"].nunique() == 6
    assert ev["session_id"].iloc[0] == ev["session_id"].iloc[3] == stable_id("u1", "2011-09-14 12:45:07.064")
    assert set(ev["source"]) == {"bestbuy-small"} and ev["query_norm"].iloc[0] == "gears of war 3"
    assert ev["event_date"].iloc[0] == dt.date(2011, 9, 14) and ev["position"].isna().all()
    reasons = dict(zip(data.quarantine["location"], data.quarantine["reason"]))
    assert reasons == {
        "train.csv.gz:4": "missing sku",
        "train.csv.gz:5": "click_time 'not a time' is not a timestamp",
        "train.csv.gz:6": "missing query",
        "queries_unlabeled.csv:3": "query_time 'yesterday' is not a timestamp",
        "small_product_data.xml.zip:product[3]": "missing name",
    }
    assert data.read["search_events"] == 8 == data.accepted["search_events"] + 4


def test_catalog_products_and_taxonomy(tmp_path):
    data = load_bestbuy_small(make_folder(tmp_path))
    products = data.tables["products"]
    assert len(products) == 2 and data.accepted["products"] == 2  # listed twice, identically: both accepted
    p = products.iloc[0].to_dict()
    assert p == {
        "product_id": "1004622",
        "source": "bestbuy",
        "title": "Sniper: Ghost Warrior - Xbox 360",
        "description": "Your aim is sure — you are a Ghost Warrior.",
        "brand": "City Interactive",
        "category_id": "abcat0701002",
        "attributes": {"type": "Game", "class": "VIDEO GAME SOFTWARE", "platform": "Xbox 360", "regularPrice": "19.99"},
    }
    tax = data.tables["taxonomy"].drop_duplicates("category_id").set_index("category_id")
    assert tax.loc["abcat0701002", "path"] == ["Best Buy", "Video Games", "Xbox 360", "Xbox 360 Games"]
    assert tax.loc["abcat0701002", "parent_id"] == "abcat0701000" and tax.loc["abcat0701002", "depth"] == 4
    assert tax.loc["cat00000", "parent_id"] is None and tax.loc["cat00000", "depth"] == 1
    assert data.read["taxonomy"] == 8 == data.accepted["taxonomy"]  # 4 nodes x 2 accepted products


def test_conflicting_duplicate_sku_keeps_the_first(tmp_path):
    xml = catalog_xml(("1", "First name"), ("1", "Second name"))
    data = load_bestbuy_small(make_folder(tmp_path, xml=xml))
    assert data.tables["products"]["title"].tolist() == ["First name"]
    q = data.quarantine[data.quarantine["target_table"] == "products"].iloc[0]
    assert q["location"].endswith("product[2]") and "on title" in q["reason"]


def test_dtd_and_entities_are_refused(tmp_path):
    bomb = '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>\n'
    with pytest.raises(SourceSchemaError, match="DTD"):
        load_bestbuy_small(make_folder(tmp_path, xml=catalog_xml(("1", "x &lol2;"), prolog=bomb)))


def test_malformed_xml_and_missing_log(tmp_path):
    with pytest.raises(SourceSchemaError, match="malformed XML"):
        load_bestbuy_small(make_folder(tmp_path, xml=catalog_xml(("1", "x"))[:-20]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceSchemaError, match="no click log"):
        load_bestbuy_small(empty)


def test_limit_applies_per_file(tmp_path):
    data = load_bestbuy_small(make_folder(tmp_path), limit=1)
    assert data.read == {"search_events": 3, "products": 1, "taxonomy": 4}


def test_real_folder(data_root):
    folder = data_root / "bestbuy-small"
    if not folder.is_dir():
        pytest.skip("../shared/data/bestbuy-small not found")
    data = load_bestbuy_small(folder)
    assert data.read == {"search_events": 30374 + 7595 + 28241, "products": 874, "taxonomy": 3504}
    assert data.quarantine.empty
    ev = data.tables["search_events"]
    assert (ev["event_type"] == "click").sum() == 30374 + 7595
    first_click = ev.iloc[1]
    assert (first_click.user_id, first_click.product_id, first_click.query) == (
        "16ef81071616c2be9d6fce3c13db0f759ccb2327", "9854804", "gears of war 3")
    products = data.tables["products"].drop_duplicates("product_id").set_index("product_id")
    assert len(products) == 437  # every product is listed twice in the XML
    assert products.loc["1004622", "title"] == "Sniper: Ghost Warrior - Xbox 360"
    assert products.loc["1004622", "category_id"] == "abcat0701002"
    tax = data.tables["taxonomy"].drop_duplicates("category_id").set_index("category_id")
    assert tax.loc["abcat0701002", "path"] == ["Best Buy", "Video Games", "Xbox 360", "Xbox 360 Games"]
    clicked = set(ev["product_id"].dropna())
    assert len(clicked & set(products.index)) / len(clicked) > 0.95
