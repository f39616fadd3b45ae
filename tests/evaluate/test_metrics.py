"""evaluate_run against nDCG / recall / MRR computed by hand (Järvelin gain = grade, log2 discount)."""

from __future__ import annotations

import math

import pytest

from strata.evaluate.metrics import evaluate_run, strict_ranking, write_trec_run

QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 0},
    "q2": {"d4": 1, "d5": 2},
    "q3": {"d6": 2},  # judged but absent from the run: counts as 0
    "q4": {"d7": 0},  # judged, nothing relevant: averaged as 0 (as plain ranx does)
}
RUN = {
    "q1": {"d3": 0.9, "d1": 0.8, "d9": 0.7, "d2": 0.6},  # grades by rank: 0, 2, -, 1
    "q2": {"d5": 0.5, "d8": 0.4},  # grades by rank: 2, -
    "q4": {"d7": 1.0},
}


def test_hand_computed_case() -> None:
    ndcg_q1 = (2 / math.log2(3) + 1 / math.log2(5)) / (2 / math.log2(2) + 1 / math.log2(3))
    ndcg_q2 = (2 / math.log2(2)) / (2 / math.log2(2) + 1 / math.log2(3))
    got = evaluate_run(QRELS, RUN, per_query=True)
    assert got["num_queries"] == 4 and got["num_queries_with_relevant"] == 3
    assert got["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2 + 0 + 0) / 4, abs=1e-9)
    assert got["recall@100"] == pytest.approx((1.0 + 0.5 + 0 + 0) / 4, abs=1e-9)
    assert got["mrr@10"] == pytest.approx((1 / 2 + 1 + 0 + 0) / 4, abs=1e-9)
    assert got["per_query"]["ndcg@10"] == pytest.approx(
        {"q1": ndcg_q1, "q2": ndcg_q2, "q3": 0.0, "q4": 0.0}
    )


def test_matches_plain_ranx_on_the_same_inputs() -> None:
    """What an independent user computes: ranx on the qrels and run as given (q3 has no run entry, so it
    gets an empty one, which ranx scores 0)."""
    from ranx import Qrels, Run, evaluate

    ref = evaluate(Qrels(QRELS), Run({**RUN, "q3": {"zz": 0.1}}), ["ndcg@10", "recall@100", "mrr@10"])
    got = evaluate_run(QRELS, RUN)
    for k, v in ref.items():
        assert got[k] == pytest.approx(float(v), abs=1e-9), k


def test_cutoffs_apply() -> None:
    run = {"q": {f"x{i:02d}": 1.0 - i / 100 for i in range(10)} | {"rel": 0.01}}  # relevant at rank 11
    got = evaluate_run({"q": {"rel": 2}}, run)
    assert got["ndcg@10"] == 0.0 and got["mrr@10"] == 0.0 and got["recall@100"] == 1.0


def test_ties_are_broken_by_doc_id() -> None:
    qrels = {"qa": {"a": 1}, "qb": {"b": 1}}
    run = {"qa": {"b": 1.0, "a": 1.0}, "qb": {"b": 1.0, "a": 1.0}}
    got = evaluate_run(qrels, run, metrics=["mrr@10"], per_query=True)
    assert got["per_query"]["mrr@10"] == {"qa": 1.0, "qb": 0.5}
    ranked = strict_ranking({"c": 0.5, "b": 0.5, "a": 0.5, "z": 0.7})
    assert [d for d, _ in ranked] == ["z", "a", "b", "c"]
    assert all(x[1] > y[1] for x, y in zip(ranked, ranked[1:]))


def test_nothing_retrieved_scores_zero() -> None:
    got = evaluate_run(QRELS, {})
    assert got == {
        "ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "num_queries": 4, "num_queries_with_relevant": 3
    }


def test_trec_run_file(tmp_path) -> None:  # noqa: ANN001
    path = write_trec_run({"q2": {"b": 1.0, "a": 1.0}, "q1": {"c": 0.25}}, tmp_path / "x.run", tag="t")
    lines = [ln.split() for ln in path.read_text().splitlines()]
    assert [ln[0] for ln in lines] == ["q1", "q2", "q2"]
    assert [(ln[2], ln[3]) for ln in lines[1:]] == [("a", "1"), ("b", "2")]
    assert float(lines[1][4]) > float(lines[2][4]) and lines[0][1] == "Q0" and lines[0][5] == "t"
    with pytest.raises(ValueError, match="whitespace"):
        write_trec_run({"q 1": {"a": 1.0}}, tmp_path / "y.run", tag="t")
