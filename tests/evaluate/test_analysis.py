"""analyze_run_dir on a tiny finished run directory: metrics, hybrid, slices, significance, separation."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_toys import fake_encode, make_run_dir  # noqa: E402

from strata.evaluate.analysis import REPORT_METRICS, analyze_run_dir, read_trec_run  # noqa: E402


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    run_dir = make_run_dir(tmp_path_factory.mktemp("run"))
    a = analyze_run_dir(run_dir, encode_fns={"baseline": fake_encode}, n_resamples=500, min_vocab_words=0)
    return run_dir, a


def test_outputs_and_metric_set(analysed):
    run_dir, a = analysed
    assert (run_dir / "analysis.json").is_file() and (run_dir / "per_query.json").is_file()
    assert set(a["retrievers"]) == {"baseline", "bm25", "hybrid"}
    for m in REPORT_METRICS:
        assert 0.0 <= a["retrievers"]["hybrid"][m] <= 1.0
    # the metrics the pipeline wrote and the analysis agree where they overlap
    ev = json.loads((run_dir / "metrics.json").read_text())
    for name in ("baseline", "bm25"):
        assert a["retrievers"][name]["ndcg@10"] == pytest.approx(ev["retrievers"][name]["ndcg@10"])
    hybrid = read_trec_run(run_dir / "runs" / "hybrid.run")
    assert set(hybrid) == {f"q{i}" for i in range(1, 9)}


def test_slices_significance_separation(analysed):
    _, a = analysed
    sl = a["slices"]
    assert sl["counts"]["length"] == {"1 token": 1, "2-3 tokens": 6, "4+ tokens": 1}
    assert sl["counts"]["spelling"]["misspelled"] == 1
    assert sl["misspelled_examples"][0][0] == "ceiling ligt fixture"
    assert "labels per query" in sl["popularity_source"]
    assert set(a["comparisons"]) == {"bm25", "hybrid"}
    c = a["comparisons"]["bm25"]["ndcg@10"]
    assert c["num_queries"] == 8 and 0 <= c["p_value"] <= 1
    sep = a["separation"]["baseline"]
    assert set(sep["grades"]) == {"0", "1", "2"}
    assert 0 <= sep["auc"]["relevant>irrelevant"] <= 1 and sep["threshold"]["precision"] > 0


def test_small_catalog_gets_no_spelling_slice(tmp_path):
    run_dir = make_run_dir(tmp_path / "r")
    a = analyze_run_dir(run_dir, separation=False, n_resamples=200)  # 25 title words < 2000
    assert "spelling" not in a["slices"]["counts"]
    assert a["slices"]["spelling_note"].startswith("not sliced")
