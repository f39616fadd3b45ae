"""ESCI judgments (OpenSearch export): ratings 100/10/1/0 -> grades 2/1/1/0."""

from __future__ import annotations

import json

import pytest

from strata.sources.base import SourceSchemaError
from strata.sources.esci import load_esci, query_id

JUDGMENTS = {
    "name": "ESCI Judgments",
    "judgmentRatings": [
        {"query": "t towels kitchen", "ratings": [
            {"docId": "B07NCQWCQS", "rating": "100.000"}, {"docId": "B07QLRTGVQ", "rating": "10.000"},
            {"docId": "B0825VCHDG", "rating": "1.000"}, {"docId": "B08JZ36B5B", "rating": "0.000"},
            {"docId": "B0BAD", "rating": "50.000"}, {"rating": "100.000"}]},
        {"query": "Tool  Wrap", "ratings": [{"docId": "B01", "rating": "100.000"}]},
        {"query": "broken"},
    ],
}
QUERYSET = {"querySetQueries": [{"queryText": "t towels kitchen"}, {"queryText": "Tool  Wrap"}, {"x": 1}]}


def write(folder, judgments=JUDGMENTS, queryset=QUERYSET):
    folder.mkdir()
    (folder / "esci_us_judgments.json").write_text(json.dumps(judgments))
    if queryset is not None:
        (folder / "esci_us_queryset.json").write_text(json.dumps(queryset))
    return folder


def test_fixture(tmp_path):
    data = load_esci(write(tmp_path / "esci"))
    labels = data.tables["labels"]
    assert labels[["query_norm", "product_id", "grade", "raw_label"]].values.tolist() == [
        ["t towels kitchen", "B07NCQWCQS", 2, "100.000"], ["t towels kitchen", "B07QLRTGVQ", 1, "10.000"],
        ["t towels kitchen", "B0825VCHDG", 1, "1.000"], ["t towels kitchen", "B08JZ36B5B", 0, "0.000"],
        ["tool wrap", "B01", 2, "100.000"]]
    assert "products" not in data.tables
    q = data.tables["queries"]
    assert q["query_id"].tolist() == [query_id("t towels kitchen"), query_id("tool wrap")]
    reasons = dict(zip(data.quarantine["location"], data.quarantine["reason"]))
    name = "esci_us_judgments.json"
    assert reasons == {
        f"{name}:judgmentRatings[0].ratings[4]": "rating '50.000' is not one of 100, 10, 1, 0",
        f"{name}:judgmentRatings[0].ratings[5]": "missing docId",
        f"{name}:judgmentRatings[2]": "judgment entry has no ratings list",
        "esci_us_queryset.json:querySetQueries[2]": "missing queryText",
    }
    assert data.read == {"labels": 8, "queries": 3}


def test_bad_json_is_a_file_error(tmp_path):
    folder = tmp_path / "esci"
    folder.mkdir()
    (folder / "esci_us_judgments.json").write_text('{"judgmentRatings": [')
    with pytest.raises(SourceSchemaError, match="invalid JSON at line 1"):
        load_esci(folder)
    (folder / "esci_us_judgments.json").write_text('{"ratings": []}')
    with pytest.raises(SourceSchemaError, match="missing required list 'judgmentRatings'"):
        load_esci(folder)


def test_real_files(data_root):
    folder = data_root / "esci"
    if not folder.is_dir():
        pytest.skip("../shared/data/esci not found")
    data = load_esci(folder)
    assert data.read == {"labels": 6678, "queries": 150} and data.quarantine.empty
    labels = data.tables["labels"]
    assert labels["grade"].value_counts().to_dict() == {2: 3389, 1: 1898 + 305, 0: 1086}
    first = labels.iloc[0]
    assert (first.query, first.product_id, first.grade) == ("t towels kitchen", "B07NCQWCQS", 2)
    assert set(labels["query_norm"]) == set(data.tables["queries"]["query_norm"])
