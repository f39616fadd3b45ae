"""Reading dataset files (``strata.sources.files``): archives, encodings, delimited records."""

from __future__ import annotations

import gzip
import zipfile

import pytest

from strata.sources.base import SourceSchemaError
from strata.sources.files import decode_lines, read_bytes, read_delimited


def test_read_bytes_gz_zip_plain(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"plain")
    with gzip.open(tmp_path / "a.txt.gz", "wb") as f:
        f.write(b"gz")
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("inner.tsv", b"tsv")
        z.writestr("inner.csv", b"csv")
    assert read_bytes(tmp_path / "a.txt") == (b"plain", "a.txt")
    assert read_bytes(tmp_path / "a.txt.gz") == (b"gz", "a.txt.gz")
    assert read_bytes(tmp_path / "a.zip", member_suffix=".tsv") == (b"tsv", "a.zip!inner.tsv")
    with pytest.raises(SourceSchemaError, match="expected one file member"):
        read_bytes(tmp_path / "a.zip")


def test_truncated_archives_are_file_errors(tmp_path):
    data = gzip.compress(b"id,x\n" * 5000)
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceSchemaError, match=r"t\.csv\.gz: truncated or corrupt gzip"):
        read_bytes(tmp_path / "t.csv.gz")
    with zipfile.ZipFile(tmp_path / "z.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.tsv", b"x\ty\n" * 5000)
    whole = (tmp_path / "z.zip").read_bytes()
    (tmp_path / "z.zip").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceSchemaError, match=r"z\.zip: truncated or corrupt zip"):
        read_bytes(tmp_path / "z.zip", member_suffix=".tsv")
    with pytest.raises(SourceSchemaError, match="file not found"):
        read_bytes(tmp_path / "missing.csv")


def test_utf8_file_with_a_bad_line_keeps_utf8_and_flags_the_line():
    data = "h\nCafé\n30°\n".encode() + "Olé\n".encode("latin-1")
    d = decode_lines(data, "f")
    assert d.encoding == "utf-8"
    assert d.lines[1] == "Café\n"
    assert set(d.bad) == {4} and "0xe9" in d.bad[4]


def test_legacy_file_is_decoded_as_windows_1252_as_a_whole():
    data = "h\nCafé\nOlé — 30°\n".encode("cp1252")
    d = decode_lines(data, "f")
    assert d.encoding == "cp1252" and not d.bad
    assert d.lines[2] == "Olé — 30°\n"


def test_bom_is_stripped_from_the_header():
    header, records = read_delimited("\ufeffa,b\n1,2\n".encode(), "f.csv", delimiter=",", required=["a", "b"])
    assert header == ["a", "b"]
    assert [r.fields for r in records] == [{"a": "1", "b": "2"}]


def test_missing_column_and_wrong_delimiter_name_the_problem():
    with pytest.raises(SourceSchemaError, match=r"f\.csv: missing required column\(s\) relevance"):
        read_delimited(b"id,query\n1,x\n", "f.csv", delimiter=",", required=["id", "relevance"])
    with pytest.raises(SourceSchemaError, match="wrong delimiter"):
        read_delimited(b"id\tquery\n1\tx\n", "f.csv", delimiter=",", required=["id", "query"])


def test_records_carry_physical_line_spans_and_problems():
    text = 'a\tb\n1\t"two\nlines"\n\n3\n4\t5\t6\n'
    _, records = read_delimited(text.encode(), "f.tsv", delimiter="\t", required=["a", "b"])
    recs = list(records)
    assert [r.location for r in recs] == ["f.tsv:2-3", "f.tsv:5", "f.tsv:6"]
    assert recs[0].fields == {"a": "1", "b": "two\nlines"}
    assert recs[1].problem == "expected 2 fields, got 1" and recs[1].raw == "3"
    assert recs[2].problem == "expected 2 fields, got 3"
