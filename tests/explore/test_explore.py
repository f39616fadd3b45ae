"""strata.explore: the summaries and plots behind the notebooks, on small hand-made frames."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from strata.explore import evaluation, judging, plots, tour  # noqa: E402


def _stats():
    return pd.DataFrame({
        "source": ["bb"] * 5,
        "query_norm": ["a", "b", "c", "d", "e"],
        "searches": [50, 30, 10, 6, 4],
        "sessions": [40, 20, 10, 6, 4],
        "clicks": [40, 10, 2, 0, 4],
        "ctr": [0.8, 0.33, 0.2, 0.0, 1.0],
        "zero_click_rate": [0.2, 0.6, 0.5, 1.0, None],
        "segment": ["head", "torso", "torso", "tail", "tail"],
        "top_categories": [[]] * 5,
    })


def test_segment_summary():
    s = tour.segment_summary(_stats())
    assert list(s["segment"]) == ["head", "torso", "tail"]
    head, torso, tail = (s.iloc[i] for i in range(3))
    assert head["queries"] == 1 and head["search_share"] == pytest.approx(0.5)
    assert torso["searches"] == 40 and torso["ctr"] == pytest.approx(12 / 40)
    assert torso["zero_click_rate"] == pytest.approx((0.6 * 30 + 0.5 * 10) / 40)  # search-weighted
    assert torso["zero_click_heavy_share"] == pytest.approx(1.0)
    assert tail["zero_click_rate"] == pytest.approx(1.0)  # the null rate is left out, not counted as 0
    assert s["search_share"].sum() == pytest.approx(1.0)
    assert tour.segment_summary(_stats().iloc[0:0]).empty


def test_zero_click_queries():
    z = tour.zero_click_queries(_stats(), n=2)
    assert list(z["query_norm"]) == ["b", "c"]


def test_ingest_and_quarantine_summaries():
    log = pd.DataFrame({"run_id": ["r1", "r2", "r1"], "source": ["hd", "hd", "bb"],
                        "target_table": ["labels", "labels", "products"], "read": [10, 5, 4],
                        "accepted": [8, 5, 4], "quarantined": [2, 0, 0], "seconds": [1.0, 1.0, 1.0]})
    s = tour.ingest_summary(log)
    row = s[s["source"] == "hd"].iloc[0]
    assert (row["runs"], row["read"], row["quarantined"]) == (2, 15, 2)
    assert row["quarantine_rate"] == pytest.approx(2 / 15)
    q = pd.DataFrame({"source": ["hd"] * 3, "target_table": ["labels"] * 3, "location": ["1", "2", "3"],
                      "raw": ["", "", ""], "run_id": ["r"] * 3,
                      "reason": ["duplicate key {'a': 1} conflicts", "duplicate key {'a': 2} conflicts",
                                 "bad grade: 'x'"]})
    qs = tour.quarantine_summary(q)
    assert list(qs["reason_kind"]) == ["duplicate key", "bad grade"] and list(qs["rows"]) == [2, 1]


def test_reason_kind():
    assert tour.reason_kind("missing title") == "missing title"
    assert tour.reason_kind("grade 7 out of range") == "grade"
    assert tour.reason_kind(None) == "(none)"


def test_label_grades():
    lab = pd.DataFrame({"source": ["hd"] * 4, "split": ["train", "train", "train", "dev"],
                        "query_norm": ["a", "a", "b", "c"], "product_id": ["1", "2", "3", "4"],
                        "grade": [2, 0, 2, 1]})
    g = tour.label_grades(lab).set_index("split")
    assert g.loc["train", "grade_2"] == 2 and g.loc["train", "queries"] == 2 and g.loc["dev", "grade_1"] == 1
    assert g.loc["dev", "grade_0"] == 0


def _judgments():
    return pd.DataFrame({
        "source": ["hd", "hd", "hd", "hd", "hd"], "query_norm": ["q1", "q1", "q2", "q2", "q3"],
        "query": ["Q1", "Q1", "Q2", "Q2", "Q3"], "product_id": ["1", "2", "3", "4", "5"],
        "judge_id": ["j@1", "j@1", "j@1", "j@1", "k@1"], "judge_version": ["v"] * 5,
        "grade": pd.array([2, 0, 0, None, 1], dtype="Int64"),
        "p0": [0.1, 0.8, 0.9, np.nan, 0.2], "p1": [0.1, 0.1, 0.05, np.nan, 0.6],
        "p2": [0.8, 0.1, 0.05, np.nan, 0.2],
        "status": ["ok", "ok", "truncated", "error:backend", "ok"], "error": [None] * 5,
        "run_id": ["r"] * 5, "judged_at": [pd.Timestamp("2026-01-01")] * 5,
    })


def _labels():
    return pd.DataFrame({"source": ["hd"] * 4, "query": ["Q1", "Q1", "Q2", "Q2"],
                         "query_norm": ["q1", "q1", "q2", "q2"], "product_id": ["1", "2", "3", "4"],
                         "grade": [2, 1, 2, 0], "raw_label": [""] * 4, "split": ["dev", "dev", "train", "dev"]})


def test_judges_and_pick():
    j = judging.judges(_judgments())
    assert list(j["judge_id"]) == ["j@1", "k@1"] and j.iloc[0]["scored_share"] == pytest.approx(0.75)
    assert judging.pick_judge(_judgments()) == "j@1"
    assert judging.pick_judge(_judgments(), "k@1") == "k@1"
    with pytest.raises(ValueError, match="no judgments"):
        judging.pick_judge(_judgments(), "nope")


def test_judged_pairs_calibration_and_disagreements():
    pairs = judging.judged_pairs(_judgments(), _labels(), "j@1")
    assert sorted(pairs["product_id"]) == ["1", "2", "3"]  # the error row has no grade
    assert judging.judged_pairs(_judgments(), _labels(), "j@1", split="dev")["product_id"].tolist() == ["1", "2"]
    rep = judging.calibration(pairs)
    assert rep["n"] == 3 and rep["accuracy"] == pytest.approx(1 / 3)
    assert rep["judge"]["confusion"][2] == [1, 0, 1]
    cf = judging.confusion_frame(rep, normalise=True)
    assert cf.loc["2 exact", "0 irrelevant"] == pytest.approx(0.5)
    products = pd.DataFrame({"source": ["hd"], "product_id": ["3"], "title": ["a drill"]})
    d = judging.disagreements(pairs, products)
    assert d["product_id"].tolist() == ["3"] and d.iloc[0]["title"] == "a drill"
    assert d.iloc[0]["confidence"] == pytest.approx(0.9)


def test_audit_reasons():
    a = pd.DataFrame({"reason": ["irrelevant_but_engaged: x", "irrelevant_but_engaged: y", "exact_but_ignored: z"]})
    r = judging.audit_reasons(a)
    assert dict(zip(r["reason"], r["rows"])) == {"irrelevant_but_engaged": 2, "exact_but_ignored": 1}


ANALYSIS = {
    "primary_metric": "ndcg@10", "metrics_order": ["ndcg@10", "recall@100"], "reference": "baseline",
    "num_queries": 3,
    "retrievers": {"baseline": {"ndcg@10": 0.3, "recall@100": 0.6, "num_queries": 3},
                   "bm25": {"ndcg@10": 0.4, "recall@100": 0.5, "num_queries": 3}},
    "comparisons": {"bm25": {"ndcg@10": {"mean_a": 0.3, "mean_b": 0.4, "diff": 0.1, "ci_low": 0.01,
                                         "ci_high": 0.2, "p_value": 0.02}}},
    "slices": {"by_retriever": {
        "baseline": {"length": {"1 token": {"num_queries": 1, "ndcg@10": 0.2},
                                "2-3 tokens": {"num_queries": 2, "ndcg@10": 0.35}}},
        "bm25": {"length": {"1 token": {"num_queries": 1, "ndcg@10": 0.5},
                            "2-3 tokens": {"num_queries": 2, "ndcg@10": 0.35}}}}},
}


def test_evaluation_frames():
    m = evaluation.metric_frame(ANALYSIS)
    assert m.loc["bm25", "ndcg@10"] == 0.4 and list(m.columns) == ["ndcg@10", "recall@100", "num_queries"]
    c = evaluation.comparison_frame(ANALYSIS)
    assert c.iloc[0]["retriever"] == "bm25" and bool(c.iloc[0]["significant"])
    s = evaluation.slice_frame(ANALYSIS)
    assert s.set_index("slice").loc["1 token", "bm25"] == 0.5


def test_query_deltas():
    pq = {"a": {"ndcg@10": {"q1": 0.5, "q2": 0.1, "q3": 0.2}}, "b": {"ndcg@10": {"q1": 0.1, "q2": 0.9, "q3": 0.2}}}
    d = evaluation.query_deltas(pq, "a", "b", queries={"q1": "drill", "q2": "saw", "q3": "tap"})
    assert d["query_id"].tolist() == ["q1", "q3", "q2"] and d.iloc[0]["query"] == "drill"
    assert d.iloc[0]["diff"] == pytest.approx(-0.4)


def test_find_run_and_lakehouse(tmp_path, monkeypatch):
    old, new = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    for r in (old, new):
        (r / "lakehouse" / "labels").mkdir(parents=True)
        (r / "metrics.json").write_text("{}")
    import os

    os.utime(old / "metrics.json", (1, 1))
    os.utime(old / "lakehouse", (1, 1))
    monkeypatch.chdir(tmp_path)
    assert evaluation.find_run() == new.resolve()
    assert evaluation.find_lakehouse() == (new / "lakehouse").resolve()
    assert evaluation.find_run(str(old)) == old.resolve()
    with pytest.raises(FileNotFoundError):
        evaluation.find_run(str(tmp_path))
    monkeypatch.chdir(tmp_path / "runs")
    with pytest.raises(FileNotFoundError, match="no finished run"):
        evaluation.find_run(roots=("nowhere",))


def test_plots_render_and_save(tmp_path):
    import matplotlib.pyplot as plt

    figs = {
        "rows": plots.table_rows(pd.DataFrame({"table": ["a", "b"], "rows": [0, 1000]})),
        "grades": plots.grade_bars(pd.DataFrame({"source": ["hd"], "split": ["dev"], "grade_0": [1],
                                                 "grade_1": [2], "grade_2": [3]})),
        "segments": plots.segment_plot(tour.segment_summary(_stats())),
        "zero_click": plots.zero_click_hist(_stats()),
        "confusion": plots.confusion_plot(judging.calibration(judging.judged_pairs(_judgments(), _labels(), "j@1"))),
        "expected": plots.expected_grade_plot(judging.judged_pairs(_judgments(), _labels(), "j@1")),
        "deltas": plots.delta_hist(pd.DataFrame({"diff": [-0.2, 0.0, 0.3]}), "a", "b", "ndcg@10"),
    }
    for name, fig in figs.items():
        p = plots.save(fig, tmp_path, name)
        assert p.read_bytes()[:4] == b"\x89PNG", name
        plt.close(fig)
    import base64

    b64 = base64.b64encode((tmp_path / "rows.png").read_bytes()).decode()
    assert plots.show_png(b64, tmp_path / "x", "copy").read_bytes()[:4] == b"\x89PNG"
    assert plots.show_png(None, tmp_path, "none") is None


def test_table_counts_on_a_real_delta_table(tmp_path):
    """Row counts from the Delta log (written with delta-rs here; Spark writes the same log)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from strata.tables import Lakehouse, spec

    lh = Lakehouse(tmp_path)
    t = pa.Table.from_pylist([{"run_id": "r", "source": "hd", "target_table": "labels", "read": 3,
                               "accepted": 3, "quarantined": 0, "seconds": 0.1}] * 3, schema=spec("ingest_log").schema)
    write_deltalake(str(lh.path("ingest_log")), t)
    write_deltalake(str(lh.path("ingest_log")), t, mode="append")
    c = tour.table_counts(lh)
    assert c.set_index("table").loc["ingest_log", "rows"] == 6 and c.iloc[0]["version"] == 1
    assert len(tour.read(lh, "ingest_log")) == 6
    assert tour.read(lh, "quarantine").empty and "reason" in tour.read(lh, "quarantine").columns
