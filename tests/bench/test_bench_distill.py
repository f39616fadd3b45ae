"""The distillation benchmark's row draw (``bench/bench_distill.py``): which rows the teacher's scores reach."""

from __future__ import annotations

import random

import pytest

from .conftest import load_bench_script


@pytest.fixture(scope="module")
def bench_distill():
    return load_bench_script("bench_distill")


def _batch(labelled: int, judged: int) -> dict:
    n = labelled + judged
    return {"query": ["q"], "texts": [[f"t{i}" for i in range(n)]], "pids": [list(range(n))],
            "grades": [[2] * labelled + [-1] * judged], "teacher": [[2.0] * labelled + [1.5] * judged]}


def _judged_rows(out: tuple) -> int:
    return sum(g < 0 for g in out[3])


def test_default_draw_fills_with_labelled_rows_first(bench_distill):
    out = bench_distill.sample(_batch(10, 6), random.Random(0), rows=8)
    assert len(out[1]) == 8 and _judged_rows(out) == 0


def test_judged_slots_reach_the_judge_only_rows(bench_distill):
    out = bench_distill.sample(_batch(10, 6), random.Random(0), rows=8, judged=4)
    assert len(out[1]) == 8 and _judged_rows(out) == 4
    # the teacher column travels with its row
    assert all((t == 1.5) == (g < 0) for g, t in zip(out[3], out[5]))


def test_short_lists_give_their_slots_to_the_other_kind(bench_distill):
    few_judged = bench_distill.sample(_batch(10, 2), random.Random(0), rows=8, judged=4)
    assert len(few_judged[1]) == 8 and _judged_rows(few_judged) == 2
    few_labelled = bench_distill.sample(_batch(2, 10), random.Random(0), rows=8, judged=4)
    assert len(few_labelled[1]) == 8 and _judged_rows(few_labelled) == 6
    tiny = bench_distill.sample(_batch(1, 1), random.Random(0), rows=8, judged=4)
    assert len(tiny[1]) == 2 and sorted(tiny[4]) == [0, 1]
