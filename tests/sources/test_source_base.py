"""Shared adapter machinery: accounting and text cleaning (file reading: test_files.py)."""

from __future__ import annotations

import pytest

from strata.sources.base import Collector, strip_html


def test_collector_conflicts_keep_the_first_and_quarantine_the_rest():
    out = Collector("t", ("labels",))
    base = {"source": "s", "query": "q", "query_norm": "q", "raw_label": "x", "split": "train"}
    for loc, pid, grade in [("f:2", "p1", 2), ("f:3", "p1", 2), ("f:4", "p1", 0), ("f:5", "p2", 1)]:
        out.read("labels")
        out.accept("labels", loc, {**base, "product_id": pid, "grade": grade})
    out.resolve_conflicts("labels", compare=("grade",))
    data = out.result()
    assert data.read == {"labels": 4} and data.accepted == {"labels": 3}
    assert list(data.tables["labels"]["grade"]) == [2, 2, 1]  # the exact repeat stays accepted
    (q,) = data.quarantine.to_dict("records")
    assert q["location"] == "f:4" and "conflicts with f:2 on grade" in q["reason"]


def test_a_record_read_but_never_judged_fails_the_check():
    out = Collector("t", ("labels",))
    out.read("labels")
    with pytest.raises(ValueError, match="read 1 != accepted 0 \\+ quarantined 0"):
        out.result()


def test_strip_html_drops_markup_and_fixes_windows_1252_controls():
    assert strip_html("<style>p {x}</style><b>Fast</b> &amp; quiet \x97 <br>really") == "Fast & quiet — really"
    assert strip_html(None) == ""
