"""strata.explore.mining / training: the summaries and plots behind notebooks 03 and 04, on hand-made
frames, a hand-written train.json and a tiny MLflow file store."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from strata.explore import mining, training  # noqa: E402
from strata.mine.report import summarize  # noqa: E402


def _examples():
    rows = []

    def add(q, pid, grade, source, score, pos=0.8, cat="hd"):
        rows.append({"catalog": cat, "query": q, "query_norm": q, "product_id": pid, "grade": grade,
                     "source": source, "mined_from": None, "rank": None, "score": score, "positive_score": pos,
                     "judge_grade": None, "judge_p2": None})

    add("drill", "p1", 2, "human", 0.8)
    add("drill", "p2", 0, "human", 0.3)
    add("drill", "p3", 0, "ann", 0.6)
    add("drill", "p4", 0, "taxonomy_sibling", 0.5)
    add("drill", "p5", 0, "random", 0.1)
    add("drill", "p6", 1, "judge", 0.7)
    add("paint", "p7", 2, "human", 0.9, pos=0.9)
    add("paint", "p8", 0, "ann", 0.55, pos=0.9)
    add("paint", "p9", 0, "random", 0.2, pos=0.9)
    add("tv", "b1", 2, "engagement", 0.7, pos=0.7, cat="bb")
    add("tv", "b2", 0, "random", None, pos=0.7, cat="bb")
    df = pd.DataFrame(rows)
    df["judge_grade"] = df["judge_grade"].astype("Int64")
    return df


def test_source_table_orders_by_priority_and_counts_grades():
    t = mining.source_table(summarize(_examples()))
    assert list(t["source"]) == ["human", "engagement", "judge", "ann", "taxonomy_sibling", "random"]
    assert list(t["kind"]) == ["seed", "seed", "judge", "mined", "mined", "random"]
    h = t.set_index("source").loc["human"]
    assert (h["rows"], h["grade_0"], h["grade_2"]) == (3, 1, 2)
    assert t["rows"].sum() == 11 and t["share"].sum() == pytest.approx(1.0, abs=1e-3)
    assert mining.source_table({"sources": {}}).empty


def test_catalog_table_and_grade_distribution():
    ex = _examples()
    rep = {"overall": summarize(ex), "catalogs": {c: summarize(g) for c, g in ex.groupby("catalog")}}
    c = mining.catalog_table(rep).set_index("catalog")
    assert c.loc["hd", "queries"] == 2 and c.loc["bb", "rows"] == 2 and c.loc["bb", "ann"] == 0.0
    assert list(c.columns[:3]) == ["rows", "queries", "rows_per_query"]
    g = mining.grade_distribution(ex)
    assert list(g["rows"]) == [7, 1, 3] and g["share"].sum() == pytest.approx(1.0, abs=1e-3)
    assert mining.catalog_table({"catalogs": {}}).empty


def test_similarity_by_source_and_mined_minus_random():
    ex = _examples()
    s = mining.similarity_by_source(ex).set_index("source")
    assert s.loc["random", "n"] == 2  # the null score is left out
    assert s.loc["random", "median"] == pytest.approx(0.15)
    assert s.loc["ann", "mean"] == pytest.approx(0.575)
    # hard negatives (ann 0.6, 0.55, sibling 0.5) median 0.55 vs random median 0.15
    assert mining.mined_minus_random(ex) == pytest.approx(0.4)
    assert mining.mined_minus_random(ex[ex["source"] != "random"]) is None


def test_top_query_is_the_one_with_most_mined_rows():
    ex = _examples()
    assert mining.top_query(ex) == ("hd", "drill")
    assert mining.top_query(ex, catalog="bb") == ("bb", "tv")
    assert mining.top_query(ex[ex["source"].isin(["human", "engagement"])]) is None


def test_example_view_adds_the_margin():
    rows = _examples()[lambda d: d["query_norm"] == "drill"].assign(title="t")
    v = mining.example_view(rows)
    assert list(v.columns) == mining.EXAMPLE_COLUMNS
    assert v.loc[v["product_id"] == "p3", "margin"].iloc[0] == pytest.approx(0.2)
    assert "title" in mining.example_view(rows.drop(columns="title")).columns


def test_mining_plots(tmp_path):
    from strata.explore import plots

    ex = _examples()
    for name, fig in (("sim", mining.similarity_plot(ex)),
                      ("grades", mining.grade_plot(mining.source_table(summarize(ex)))),
                      ("query", mining.query_plot(mining.example_view(ex[ex["query_norm"] == "drill"]), "drill"))):
        assert plots.save(fig, tmp_path, name).read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- training

SUMMARY = {"model": "/x/model", "groups": 10, "config": {"mlflow_uri": None},
           "stages": [{"stage": 1, "model_dir": "/x/stage1/model", "steps": 4, "groups": 10, "seconds": 2.0,
                       "examples_per_s": 30.5, "resumed_from_step": None, "final_loss": 1.2},
                      {"stage": 2, "model_dir": "/x/stage2/model", "steps": 3, "groups": 8, "seconds": 1.5,
                       "examples_per_s": 20.0, "resumed_from_step": 1, "final_loss": 0.4}]}

BENCH = {"quality": {"baseline": {"ndcg@10": 0.30, "recall@100": 0.7, "mrr@10": 0.35},
                     "stage1+2": {"ndcg@10": 0.36, "recall@100": 0.78, "mrr@10": 0.41},
                     "bm25": {"ndcg@10": 0.25, "recall@100": 0.6, "mrr@10": 0.3},
                     "stage1": {"ndcg@10": 0.34, "recall@100": 0.76, "mrr@10": 0.4},
                     "mnrl": {"ndcg@10": 0.33, "recall@100": 0.75, "mrr@10": 0.38}},
         "relative_ndcg10": {"stage1+2": {"vs_baseline": 0.2, "vs_bm25": 0.44, "vs_mnrl": 0.0909}},
         "strata": {"stages": SUMMARY["stages"]},
         "mnrl": {"steps": 7, "examples_per_s": 50.0, "seconds": 3.0}}


def test_find_train_dir_and_stage_frame(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "demo" / "train"
    run.mkdir(parents=True)
    (run / "train.json").write_text(json.dumps(SUMMARY))
    assert training.find_train_dir(run) == run.resolve()
    with pytest.raises(FileNotFoundError):
        training.find_train_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert training.find_train_dir("") == run.resolve()  # found under runs/*/*/train.json
    s = training.stage_frame(training.load_summary(run))
    assert list(s["stage"]) == ["stage1", "stage2"] and list(s["steps"]) == [4, 3]
    assert s.loc[1, "final_loss"] == 0.4 and s.loc[1, "resumed_from_step"] == 1
    assert training.tracking_uri(run, SUMMARY) == (run.resolve() / "mlruns").as_uri()
    assert training.tracking_uri(run, {"config": {"mlflow_uri": "http://m"}}) == "http://m"


def test_metric_history_reads_the_newest_run_per_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow

    uri = (tmp_path / "mlruns").as_uri()
    assert training.metric_history(uri).empty  # no experiment yet
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("strata-train")
    old = client.create_run(exp, run_name="stage1", start_time=1000)
    client.log_metric(old.info.run_id, "loss", 9.0, step=1)
    client.set_terminated(old.info.run_id)
    for name, t, n in (("stage1", 2000, 4), ("stage2", 3000, 3)):
        r = client.create_run(exp, run_name=name, start_time=t)
        for step in range(1, n + 1):
            client.log_metric(r.info.run_id, "loss", 2.0 / step, step=step)
            client.log_metric(r.info.run_id, "lr", 1e-5, step=step)
        client.set_terminated(r.info.run_id)
    h = training.metric_history(uri)
    assert set(h["stage"]) == {"stage1", "stage2"} and 9.0 not in set(h["value"])
    assert len(h[(h["stage"] == "stage1") & (h["metric"] == "loss")]) == 4
    g = training.global_steps(h, training.stage_frame(SUMMARY))
    assert g.loc[g["stage"] == "stage2", "global_step"].min() == 5  # after stage 1's 4 steps
    assert g.loc[g["stage"] == "stage1", "global_step"].max() == 4
    assert training.global_steps(h).loc[lambda d: d["stage"] == "stage2", "global_step"].min() == 5


def test_find_bench_and_frames(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert training.find_bench("") is None
    with pytest.raises(FileNotFoundError):
        training.find_bench(tmp_path / "missing.json")
    p = tmp_path / "bench" / "results" / "train.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(BENCH))
    assert training.find_bench("") == p.resolve()
    f = training.bench_frame(json.loads(p.read_text()))
    assert list(f["retriever"]) == ["off-the-shelf", "BM25", "MNRL", "Stage 1", "Stage 1+2"]
    assert f.set_index("key").loc["stage1+2", "vs_bm25"] == 0.44
    assert pd.isna(f.set_index("key").loc["bm25", "vs_mnrl"])
    c = training.bench_stage_frame(BENCH)
    assert list(c["run"]) == ["stage1", "stage2", "mnrl"] and c.loc[2, "examples_per_s"] == 50.0
    assert training.bench_stage_frame({}).empty


def test_training_plots(tmp_path):
    from strata.explore import plots

    stages = training.stage_frame(SUMMARY)
    hist = pd.DataFrame({"stage": ["stage1"] * 2 + ["stage2"] * 2, "run_id": "r", "metric": "loss",
                         "step": [1, 2, 1, 2], "value": [2.0, 1.5, 1.0, 0.8]})
    for name, fig in (("curves", training.curves_plot(hist, stages)),
                      ("curves_empty", training.curves_plot(hist.iloc[0:0])),
                      ("stages", training.stage_plot(stages)),
                      ("bench", training.bench_plot(training.bench_frame(BENCH)))):
        assert plots.save(fig, tmp_path, name).read_bytes()[:4] == b"\x89PNG"
