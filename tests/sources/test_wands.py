"""WANDS: a tiny release in the public format (tab separated) and the real query-only copy."""

from __future__ import annotations

import logging

import pytest

from strata.sources.wands import load_wands, parse_features

QUERY = (
    "query_id\tquery\tquery_class\n"
    "0\tsalon chair\tMassage Chairs\n1\tsmart coffee table\tCoffee & Cocktail Tables\n2\t\tEmpty\n"
)
PRODUCT = (
    "product_id\tproduct_name\tproduct_class\tcategory hierarchy\tproduct_description\tproduct_features\t"
    "rating_count\taverage_rating\treview_count\n"
    "0\tsolid wood platform bed\tBeds\tFurniture / Bedroom Furniture / Beds & Headboards\tgood , deep sleep\t"
    "overallwidth-sidetoside:64.7|dsprimaryproductstyle : modern| : gray wood\t15.0\t4.5\t15.0\n"
    "1\tall-clad 7 qt . slow cooker\tSlow Cookers\tFurniture / Kitchen\t\tcapacityquarts:7\t\t\t\n"
    "2\t\tBeds\tFurniture\t\t\t\t\t\n"
)
LABEL = (
    "id\tquery_id\tproduct_id\tlabel\n"
    "0\t0\t0\tExact\n1\t0\t1\tIrrelevant\n2\t1\t1\tPartial\n3\t1\t0\tMaybe\n4\t9\t0\tExact\n"
)


def write_release(folder, *, products=True, labels=True):
    folder.mkdir(parents=True)
    (folder / "query.csv").write_text(QUERY)
    if products:
        (folder / "product.csv").write_text(PRODUCT)
    if labels:
        (folder / "label.csv").write_text(LABEL)
    return folder


def test_parse_features():
    assert parse_features("a:b|c : d| : x|e:|a:z") == {"a": "b", "c": "d"}


def test_full_release(tmp_path):
    data = load_wands(write_release(tmp_path / "WANDS" / "dataset").parent)  # the repo root works too
    q = data.tables["queries"]
    assert q[["query_id", "query", "query_class"]].values.tolist() == [
        ["0", "salon chair", "Massage Chairs"], ["1", "smart coffee table", "Coffee & Cocktail Tables"]]
    labels = data.tables["labels"]
    assert labels[["query", "product_id", "grade", "raw_label"]].values.tolist() == [
        ["salon chair", "0", 2, "Exact"], ["salon chair", "1", 0, "Irrelevant"],
        ["smart coffee table", "1", 1, "Partial"]]
    p = data.tables["products"].iloc[0].to_dict()
    assert p["title"] == "solid wood platform bed" and p["description"] == "good , deep sleep"
    assert p["category_id"] == "Furniture / Bedroom Furniture / Beds & Headboards"
    assert p["attributes"] == {
        "overallwidth-sidetoside": "64.7", "dsprimaryproductstyle": "modern", "product_class": "Beds",
        "rating_count": "15.0", "average_rating": "4.5", "review_count": "15.0"}
    tax = data.tables["taxonomy"].drop_duplicates("category_id").set_index("category_id")
    assert tax.loc["Furniture / Bedroom Furniture", "parent_id"] == "Furniture"
    assert tax.loc["Furniture / Bedroom Furniture / Beds & Headboards", "path"] == [
        "Furniture", "Bedroom Furniture", "Beds & Headboards"]
    reasons = {(r["target_table"], r["location"]): r["reason"] for r in data.quarantine.to_dict("records")}
    assert reasons == {
        ("queries", "query.csv:4"): "missing query_id or query",
        ("products", "product.csv:4"): "missing product_id or product_name",
        ("labels", "label.csv:5"): "label 'Maybe' is not Exact, Partial or Irrelevant",
        ("labels", "label.csv:6"): "query_id '9' is not in query.csv",
    }
    assert data.read == {"queries": 3, "products": 3, "taxonomy": 5, "labels": 5}


def test_query_only_release_warns_and_gives_queries(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        data = load_wands(write_release(tmp_path / "w", products=False, labels=False))
    assert list(data.tables) == ["queries"] and "no product.csv or label.csv" in caplog.text


def test_real_queries(data_root):
    folder = data_root / "wands"
    if not (folder / "query.csv").is_file():
        pytest.skip("../shared/data/wands not found")
    data = load_wands(folder)
    assert data.read == {"queries": 480} and data.quarantine.empty
    q = data.tables["queries"].set_index("query_id")
    assert q.loc["0", "query"] == "salon chair" and q.loc["0", "query_class"] == "Massage Chairs"
    assert q.loc["2", "query_class"] == "Kids Wall Décor"
