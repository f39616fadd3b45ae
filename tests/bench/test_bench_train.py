"""The MNRL peer's rows (``bench/bench_train.py``): what data the +3% comparison gives the peer."""

from __future__ import annotations

import pytest

from .conftest import load_bench_script


@pytest.fixture(scope="module")
def bench_train():
    return load_bench_script("bench_train")


GROUPS = {"query": ["drill", "saw", "nothing", "few"],
          "texts": [["e1", "e2", "e3", "p1", "z1", "z2"], ["e", "z1", "z2", "z3"], ["z1", "z2"], ["e", "z"]],
          "grades": [[2, 2, 2, 1, 0, 0], [2, 0, 0, 0], [0, 0], [2, 0]]}


def test_one_row_per_query_by_default(bench_train):
    rows = bench_train.mnrl_rows(GROUPS, 3, 13)
    # no positive ("nothing") or too few lower-graded rows ("few"): no row
    assert [r["anchor"] for r in rows] == ["drill", "saw"]
    assert rows[0]["positive"] in {"e1", "e2", "e3"}
    assert {rows[0][f"negative_{i}"] for i in (1, 2, 3)} <= {"p1", "z1", "z2"}


def test_positives_gives_a_row_per_distinct_top_grade_product(bench_train):
    rows = bench_train.mnrl_rows(GROUPS, 3, 13, positives=2)
    drill = [r for r in rows if r["anchor"] == "drill"]
    assert len(drill) == 2 and len({r["positive"] for r in drill}) == 2
    assert len([r for r in rows if r["anchor"] == "saw"]) == 1  # capped at what the query has
    assert len(bench_train.mnrl_rows(GROUPS, 3, 13, positives=9)) == 4
    # the default draw is unchanged by the option's existence (earlier peer runs reproduce)
    assert bench_train.mnrl_rows(GROUPS, 3, 13, positives=1) == bench_train.mnrl_rows(GROUPS, 3, 13)
