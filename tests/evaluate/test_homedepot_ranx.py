"""On the real Home Depot dev split (built here from ../shared/data: ingest -> dev-set export over the whole
50k-product catalog), BM25's metrics equal an independent plain-ranx computation from the written qrels and
TREC run files, over every dev query. Dense retrieval is left out only to keep the suite fast: the metric code
path is the same (tests/test_cli.py checks the dense path end to end on a small folder)."""

import warnings

import pytest

from strata.embed.config import EmbedConfig
from strata.evaluate.analysis import REPORT_METRICS, read_trec_run
from strata.evaluate.beir_eval import evaluate_beir
from strata.evaluate.devset import export_devset
from strata.evaluate.metrics import evaluate_run
from strata.ingest.run import ingest_source
from strata.sources.beir import read_beir
from strata.tables import Lakehouse


@pytest.mark.integration
def test_homedepot_metrics_match_plain_ranx(data_root, engines, tmp_path):
    from ranx import Qrels, Run, evaluate

    lh = Lakehouse(tmp_path / "lh")
    ingest_source("homedepot", data_root / "homedepot" / "train.csv.gz", engines=engines, lakehouse=lh,
                  run_id="t")
    export_devset(engines.spark, lh, "homedepot", tmp_path / "beir")
    ds = read_beir(tmp_path / "beir", "dev")
    assert len(ds.corpus) > 50_000 and len(ds.qrels) > 2_000
    res = evaluate_beir(ds, ["bm25"], k=100, embed_cfg=EmbedConfig(), runs_out=tmp_path / "runs")
    run = read_trec_run(tmp_path / "runs" / "bm25.run")
    qrels = {q: ds.qrels[q] for q in ds.judged_queries()}
    ours = evaluate_run(qrels, {q: run.get(q, {}) for q in qrels}, REPORT_METRICS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = evaluate(Qrels(qrels), Run(run), list(REPORT_METRICS), make_comparable=True)
    for m in REPORT_METRICS:
        assert ours[m] == pytest.approx(theirs[m], abs=1e-9), m
    for m in ("ndcg@10", "recall@100", "mrr@10"):
        assert res["retrievers"]["bm25"][m] == pytest.approx(theirs[m], abs=1e-9), m
