"""The report's metric set on a hand-computed case (exact values), plus fusion, slices, separation,
category accuracy on toy inputs."""

import math

import pytest

from strata.evaluate.analysis import REPORT_METRICS
from strata.evaluate.category import category_accuracy, intended_categories
from strata.evaluate.fusion import hybrid_components, rrf
from strata.evaluate.metrics import evaluate_run
from strata.evaluate.separation import auc, best_threshold, separation_from_sims
from strata.evaluate.slices import (
    SpellingVocab,
    assign_slices,
    label_count_segments,
    length_bucket,
    slice_metrics,
)

QRELS = {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d5": 1}, "q3": {"d8": 0}}
RUN = {
    "q1": {"d3": 0.9, "d1": 0.8, "d4": 0.7, "d2": 0.6},
    "q2": {"d6": 0.5, "d7": 0.4},
    "q3": {"d8": 0.3},
}


def test_hand_computed_graded_metrics():
    r = evaluate_run(QRELS, RUN, REPORT_METRICS, per_query=True)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)  # d1 at rank 2, d2 at rank 4
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    q1 = {
        "ndcg@5": dcg / idcg, "ndcg@10": dcg / idcg, "ndcg@20": dcg / idcg,
        "recall@10": 1.0, "recall@100": 1.0, "precision@10": 0.2, "mrr@10": 0.5,
    }
    for m, v in q1.items():
        assert r["per_query"][m]["q1"] == pytest.approx(v, abs=1e-12), m
        assert r["per_query"][m]["q2"] == 0.0 and r["per_query"][m]["q3"] == 0.0
        assert r[m] == pytest.approx(v / 3, abs=1e-12), m  # q2 misses, q3 has nothing relevant
    assert r["num_queries"] == 3 and r["num_queries_with_relevant"] == 2
    ndcg_at_1 = evaluate_run(QRELS, RUN, ["ndcg@1"])["ndcg@1"]
    assert ndcg_at_1 == 0.0  # d3 (grade 0) is first


def test_rrf_hand_case_and_names():
    a = {"q": {"x": 3.0, "y": 2.0}}
    b = {"q": {"y": 9.0, "z": 1.0}}
    f = rrf([a, b], k=60)["q"]
    assert f["y"] == pytest.approx(1 / 62 + 1 / 61)
    assert f["x"] == pytest.approx(1 / 61) and f["z"] == pytest.approx(1 / 62)
    assert list(f) == ["y", "x", "z"]
    assert hybrid_components("hybrid") == ("bm25", "baseline")
    assert hybrid_components("hybrid:bm25+/m/dir") == ("bm25", "/m/dir")
    assert hybrid_components("bm25") is None
    with pytest.raises(ValueError):
        hybrid_components("hybrid:bm25")


def test_misspelling_heuristic():
    v = SpellingVocab(["Cordless Drill Driver", "Claw Hammer", "Ceiling Light Fixture"])
    assert v.misspelled_tokens("cordles dril saw") == ["cordles", "dril"]  # 'saw': < 4 chars, never flagged
    assert v.is_misspelled("hamer") and v.is_misspelled("hammmer") and v.is_misspelled("hmamer")
    assert v.is_misspelled("fixtrue") and not v.is_misspelled("hammer")
    assert not v.is_misspelled("2x4x8") and not v.is_misspelled("zzzzzz")  # digits; nothing near


def test_slices_without_and_with_a_search_log():
    assert [length_bucket(t) for t in ("a", "a b", "a b c", "a b c d")] == [
        "1 token", "2-3 tokens", "2-3 tokens", "4+ tokens"]
    qrels = {f"q{i}": {f"d{j}": 1 for j in range(i)} for i in range(1, 7)}
    seg = label_count_segments(qrels)
    assert seg["q6"] == "head" and seg["q1"] == "tail" and "torso" in seg.values()
    queries = {q: "drill" for q in qrels}
    s = assign_slices(queries, qrels, query_stats={"drill": {"segment": "torso", "zero_click_rate": 0.8}},
                      synthetic={"q1": True})
    assert set(s["popularity"].values()) == {"torso"}
    assert set(s["zero_click"].values()) == {"zero-click-heavy"}
    assert s["origin"]["q1"] == "synthetic" and s["origin"]["q2"] == "real"
    per_query = {"ndcg@10": {q: float(i) for i, q in enumerate(qrels)}}
    sm = slice_metrics(per_query, {"popularity": seg})
    assert sm["popularity"]["head"]["num_queries"] + sm["popularity"]["torso"]["num_queries"] + \
        sm["popularity"]["tail"]["num_queries"] == 6
    assert list(sm["popularity"]) == ["head", "torso", "tail"]


def test_auc_threshold_and_separation():
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.1], [0.9]) == 0.0
    assert auc([0.5, 0.5], [0.5]) == 0.5
    assert auc([0.9, 0.4], [0.5, 0.1]) == 0.75
    assert auc([], [0.1]) is None
    import numpy as np

    th = best_threshold(np.array([0.9, 0.8, 0.7, 0.2]), np.array([True, True, False, False]))
    assert th["threshold"] == 0.8 and th["precision"] == 1.0 and th["recall"] == 1.0
    assert th["false_positive_rate"] == 0.0 and th["criterion"] == "youden"
    sep = separation_from_sims({0: [0.1, 0.2], 1: [0.4, 0.5], 2: [0.6, 0.9]})
    assert sep["auc"] == {"1>0": 1.0, "2>0": 1.0, "2>1": 1.0, "relevant>irrelevant": 1.0}
    assert sep["threshold"]["threshold"] == 0.4 and sep["grades"]["2"]["n"] == 2


def test_category_accuracy():
    doc_cat = {"a": "drills", "b": "drills", "c": "saws", "d": None}
    qrels = {"q1": {"a": 2, "c": 1}, "q2": {"d": 2}}
    qc = intended_categories(qrels, doc_cat)
    assert qc == {"q1": "drills"}  # q2's relevant product has no category
    r = category_accuracy({"q1": {"a": 3, "c": 2, "b": 1, "d": 0.5}}, qc, doc_cat, k=10)
    assert r["category_accuracy@10"] == pytest.approx(2 / 3) and r["num_queries"] == 1
