"""BEIR folders as canonical tables (through strata.sources.beir.read_beir)."""

from __future__ import annotations

import pytest

from strata.sources.base import SourceSchemaError
from strata.sources.beir import BeirDataset, write_beir
from strata.sources.beir_adapter import load_beir


def test_fixture(tmp_path):
    ds = BeirDataset(
        corpus={"d1": {"title": "Red  mug", "text": "A mug."}, "d2": {"title": "", "text": "Only text"},
                "d3": {"title": "", "text": ""}},
        queries={"q1": "red mug", "q2": "Mug  "},
        qrels={"q1": {"d1": 2, "d2": 0}, "q2": {"d1": 3}},
        split="test",
    )
    data = load_beir(write_beir(ds, tmp_path / "mini"))
    p = data.tables["products"]
    assert p[["product_id", "title", "description"]].values.tolist() == [
        ["d1", "Red mug", "A mug."], ["d2", "Only text", None]]
    assert set(p["source"]) == {"beir"}
    q = data.tables["queries"]
    assert q[["query_id", "query_norm", "split"]].values.tolist() == [["q1", "red mug", "test"], ["q2", "mug", "test"]]
    labels = data.tables["labels"]
    assert labels[["query_norm", "product_id", "grade", "split"]].values.tolist() == [
        ["red mug", "d1", 2, "test"], ["red mug", "d2", 0, "test"]]
    reasons = sorted(data.quarantine["reason"])
    assert reasons == ["document has neither title nor text", "grade 3 is outside 0..2"]


def test_broken_folder_is_a_file_error(tmp_path):
    with pytest.raises(SourceSchemaError, match="missing corpus.jsonl"):
        load_beir(tmp_path)
