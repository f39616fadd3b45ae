"""Home Depot adapter: fixture in the Kaggle format, malformed input, and the real file."""

from __future__ import annotations

import gzip

import pytest

from strata.config_base import SplitConfig
from strata.sources.base import SourceSchemaError
from strata.sources.homedepot import grade_of, load_homedepot
from strata.text import split_of

HEADER = "id,product_uid,product_title,search_term,relevance\r\n"
GOOD = [
    "1,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket,2.5",
    "2,100001,Simpson Strong-Tie 12-Gauge Angle,angle bracket,3",
    '3,100002,"BEHR Premium 1-gal. #SC-141 Tugboat, Wood Coating",Deck  Over,2.67',
    "4,100003,Delta Vero Shower Trim 30°,rain shower head,2.33",
    "5,100004,Whirlpool Microwave,microwave,1",
    "6,100004,Whirlpool Microwave,microwave oven,1.67",
    "7,100004,Whirlpool Microwave,MICROWAVE,2.33",
    "8,100005,Café Table,cafe table,2",
]


def write(path, lines, *, encoding="utf-8", gz=True, header=HEADER):
    data = (header + "".join(line + "\r\n" for line in lines)).encode(encoding)
    if gz:
        path = path.with_suffix(".csv.gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_grade_bins():
    assert [grade_of(x) for x in (3, 2.67, 2.66, 2.5, 2, 1.99, 1)] == [2, 2, 1, 1, 1, 0, 0]


def test_fixture_rows_and_grades(tmp_path):
    data = load_homedepot(write(tmp_path / "train", GOOD))
    labels = data.tables["labels"]
    got = [(r.query, r.query_norm, r.product_id, r.grade, r.raw_label) for r in labels.itertuples()]
    assert got == [
        ("l bracket", "l bracket", "100001", 1, "2.5"),
        ("angle bracket", "angle bracket", "100001", 2, "3"),
        ("Deck  Over", "deck over", "100002", 2, "2.67"),
        ("rain shower head", "rain shower head", "100003", 1, "2.33"),
        ("microwave", "microwave", "100004", 0, "1"),
        ("microwave oven", "microwave oven", "100004", 0, "1.67"),
        ("cafe table", "cafe table", "100005", 1, "2"),
    ]
    assert list(labels["split"]) == [split_of(q) for q in labels["query_norm"]]
    products = data.tables["products"]
    assert products.iloc[2].to_dict() == {
        "product_id": "100002", "source": "homedepot",
        "title": "BEHR Premium 1-gal. #SC-141 Tugboat, Wood Coating",
        "description": None, "brand": None, "category_id": None, "attributes": {},
    }
    assert "Delta Vero Shower Trim 30°" in set(products["title"]) and "Café Table" in set(products["title"])
    # row 7: same (query_norm, product) as row 5 with grade 1 vs 0 -> first kept, later quarantined
    (q,) = data.quarantine.to_dict("records")
    assert q["target_table"] == "labels" and q["location"] == "train.csv.gz:8"
    assert "conflicts with train.csv.gz:6 on grade" in q["reason"]
    assert data.read == {"products": 8, "labels": 8}
    assert data.accepted == {"products": 8, "labels": 7}


def test_split_uses_the_configured_fraction(tmp_path):
    data = load_homedepot(write(tmp_path / "train", GOOD), split=SplitConfig(dev_fraction=0.99, salt="x"))
    assert list(data.tables["labels"]["split"]) == [split_of(q, 0.99, "x") for q in data.tables["labels"]["query_norm"]]


def test_malformed_rows_are_quarantined_with_reasons(tmp_path):
    path = tmp_path / "train.csv"
    lines = [
        "1,100001,Angle 30°,l bracket,2.5",  # utf-8 rows: the file is UTF-8
        "2,100002,Café,deck over,3",
    ]
    body = (HEADER + "".join(line + "\r\n" for line in lines)).encode()
    body += "3,100003,Olé latin-1,query,2\r\n".encode("latin-1")  # invalid UTF-8 in a UTF-8 file
    body += (
        ",100004,Title,query,2\r\n"  # missing id
        "5,100005,Title,query,high\r\n"  # non-numeric relevance
        "6,100006,Title,query,4\r\n"  # out of range
        "7,100007,Title,query\r\n"  # wrong column count
        "8,100008,Title,,2\r\n"  # missing search term
        "9,,Title,query,2\r\n"  # missing product_uid
        "10,100010,Title,query,nan\r\n"  # not finite
    ).encode()
    path.write_bytes(body)
    data = load_homedepot(path)
    reasons = {(r["target_table"], r["location"]): r["reason"] for r in data.quarantine.to_dict("records")}
    assert reasons == {
        ("products", "train.csv:4"): "invalid UTF-8: byte 0xe9 at column 12",
        ("labels", "train.csv:4"): "invalid UTF-8: byte 0xe9 at column 12",
        ("products", "train.csv:5"): "missing id",
        ("labels", "train.csv:5"): "missing id",
        ("labels", "train.csv:6"): "relevance 'high' is not a number",
        ("labels", "train.csv:7"): "relevance '4' is outside [1, 3]",
        ("products", "train.csv:8"): "expected 5 fields, got 4",
        ("labels", "train.csv:8"): "expected 5 fields, got 4",
        ("labels", "train.csv:9"): "missing search_term",
        ("products", "train.csv:10"): "missing product_uid",
        ("labels", "train.csv:10"): "missing product_uid",
        ("labels", "train.csv:11"): "relevance 'nan' is outside [1, 3]",
    }
    raw = data.quarantine.set_index(["target_table", "location"])["raw"]
    assert raw[("labels", "train.csv:8")] == "7,100007,Title,query"
    q = data.quarantined()
    for t in ("products", "labels"):
        assert data.read[t] == 10 == data.accepted[t] + q[t]
    assert data.accepted == {"products": 6, "labels": 2}
    # a product whose label was bad is still in the catalog
    assert set(data.tables["products"]["product_id"]) == {"100001", "100002", "100005", "100006", "100008", "100010"}


def test_a_latin1_file_is_read_as_windows_1252_not_quarantined(tmp_path):
    path = write(tmp_path / "train", ["1,100001,Café Table — 30°,cafe table,3"], encoding="cp1252", gz=False)
    data = load_homedepot(path)
    assert data.quarantine.empty
    assert data.tables["products"]["title"].tolist() == ["Café Table — 30°"]


def test_file_level_errors(tmp_path):
    good = write(tmp_path / "train", GOOD * 200)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(SourceSchemaError, match=r"cut\.csv\.gz: truncated or corrupt gzip"):
        load_homedepot(cut)
    nocol = write(tmp_path / "nocol", ["1,100001,T,q"], header="id,product_uid,product_title,search_term\n", gz=False)
    with pytest.raises(SourceSchemaError, match=r"missing required column\(s\) relevance"):
        load_homedepot(nocol)
    semi = tmp_path / "semi.csv"
    semi.write_text("id;product_uid;product_title;search_term;relevance\n1;100001;T;q;3\n")
    with pytest.raises(SourceSchemaError, match="wrong delimiter"):
        load_homedepot(semi)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceSchemaError, match="no Home Depot train.csv file"):
        load_homedepot(tmp_path / "empty")
    with pytest.raises(SourceSchemaError, match="file not found"):
        load_homedepot(tmp_path / "nowhere.csv")


def test_limit_reads_the_first_n_records(tmp_path):
    data = load_homedepot(write(tmp_path / "train", GOOD), limit=3)
    assert data.read == {"products": 3, "labels": 3}
    assert data.tables["labels"]["query"].tolist() == ["l bracket", "angle bracket", "Deck  Over"]


def test_real_file(data_root):
    path = data_root / "homedepot" / "train.csv.gz"
    if not path.is_file():
        pytest.skip("../shared/data/homedepot/train.csv.gz not found")
    data = load_homedepot(path)
    assert data.read == {"products": 66534, "labels": 66534}
    # 4 conflicting (query_norm, product) pairs; 17 rows re-title an already seen product_uid
    assert data.quarantined() == {"products": 17, "labels": 4}
    assert not data.quarantine["reason"].str.startswith("invalid UTF-8").any()  # the copy is clean UTF-8
    labels = {(r.query_norm, r.product_id): r for r in data.tables["labels"].itertuples()}
    assert labels[("l bracket", "100001")].grade == 1  # id 3, relevance 2.5
    assert labels[("deck over", "100002")].grade == 2  # id 9, relevance 3
    assert labels[("convection otr", "100006")].raw_label == "3"
    assert labels[("rain shower head", "100005")].grade == 1  # id 16, relevance 2.33
    assert data.tables["products"]["product_id"].nunique() == 50309
    assert set(data.tables["labels"]["grade"]) == {0, 1, 2}
