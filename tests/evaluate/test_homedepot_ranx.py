"""On the real Home Depot dev split (the newest finished demo run's BEIR export and TREC runs), the
report's metrics equal an independent plain-ranx computation from the files. Skips without a demo run."""

import warnings
from pathlib import Path

import pytest

from strata.evaluate.analysis import REPORT_METRICS, read_trec_run
from strata.evaluate.beir_eval import sample_queries
from strata.evaluate.fusion import rrf
from strata.evaluate.metrics import evaluate_run
from strata.sources.beir import read_beir

RUNS = Path(__file__).resolve().parents[2] / "runs"


def _demo_dir() -> Path:
    cands = sorted(
        p for p in RUNS.glob("demo-*")
        if (p / "beir" / "homedepot-dev").is_dir() and (p / "runs" / "bm25.run").is_file()
    )
    if not cands:
        pytest.skip(f"no finished demo run with a Home Depot dev export under {RUNS}")
    return cands[-1]


@pytest.mark.integration
def test_homedepot_metrics_match_plain_ranx():
    from ranx import Qrels, Run, evaluate

    d = _demo_dir()
    ds = read_beir(d / "beir" / "homedepot-dev", "dev")
    qs = sample_queries(ds.judged_queries(), 300)
    qrels = {q: ds.qrels[q] for q in qs}
    runs = {n: read_trec_run(d / "runs" / f"{n}.run") for n in ("bm25", "baseline")
            if (d / "runs" / f"{n}.run").is_file()}
    if len(runs) == 2:
        runs["hybrid"] = rrf(list(runs.values()), depth=100)
    for name, run in runs.items():
        run = {q: run.get(q, {}) for q in qs}
        ours = evaluate_run(qrels, run, REPORT_METRICS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = evaluate(Qrels(qrels), Run({q: r for q, r in run.items() if r}), list(REPORT_METRICS),
                              make_comparable=True)
        for m in REPORT_METRICS:
            assert ours[m] == pytest.approx(theirs[m], abs=1e-9), (name, m)
