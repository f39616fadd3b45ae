"""The CLI and job entry points as a user runs them: real subprocesses, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from strata.sources.beir import BeirDataset, write_beir

ROOT = Path(__file__).resolve().parents[1]
STRATA = [sys.executable, "-c", "from strata.cli import main; main()"]


def _run(args, **kw):
    return subprocess.run([*STRATA, *args], capture_output=True, text=True, timeout=600, **kw)


def test_config_error_names_field_and_exits_2():
    r = _run(["config", "--profile", "demo", "--set", "embed.batch_size=zero"])
    assert r.returncode == 2
    assert "embed.batch_size" in r.stderr + r.stdout


def test_config_prints_resolved_yaml():
    r = _run(["config", "--profile", "local", "--set", "eval.max_queries=9"])
    assert r.returncode == 0, r.stderr
    assert "max_queries: 9" in r.stdout


@pytest.mark.parametrize("job", sorted(p.name for p in (ROOT / "jobs").glob("[a-z]*.py")))
def test_every_job_entry_point_runs_help(job):
    r = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / job), "--help"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout


def _tiny_beir(folder: Path) -> None:
    corpus = {
        "d1": {"title": "cordless drill", "text": "18v lithium drill driver"},
        "d2": {"title": "deck stain", "text": "semi transparent wood stain for decks"},
        "d3": {"title": "garden hose", "text": "50 ft rubber water hose"},
        "d4": {"title": "drill bit set", "text": "titanium bits for drills"},
        "d5": {"title": "patio umbrella", "text": "9 ft market umbrella"},
    }
    queries = {"q1": "drill", "q2": "wood deck stain", "q3": "water hose", "q4": "umbrella for patio"}
    qrels = {"q1": {"d1": 2, "d4": 1, "d3": 0}, "q2": {"d2": 2}, "q3": {"d3": 2, "d5": 0}, "q4": {"d5": 1}}
    write_beir(BeirDataset(corpus, queries, qrels, split="test"), folder)


def _ranx_from_files(folder: Path, run_file: Path) -> dict:
    """An independent computation: ranx straight from the BEIR qrels and the TREC run file."""
    from ranx import Qrels, Run, evaluate

    qrels: dict = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, g = line.split("\t")
        qrels.setdefault(q, {})[d] = int(g)
    run: dict = {}
    for line in run_file.read_text().splitlines():
        q, _, d, _, s, _ = line.split()
        run.setdefault(q, {})[d] = float(s)
    return evaluate(Qrels(qrels), Run(run), ["ndcg@10", "recall@100", "mrr@10"])


def test_eval_bm25_matches_independent_ranx(tmp_path):
    _tiny_beir(tmp_path / "beir")
    out = tmp_path / "m.json"
    r = _run(["eval", "--dataset", str(tmp_path / "beir"), "--model", "bm25", "--out", str(out),
              "--runs-out", str(tmp_path / "runs")])
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(out.read_text())
    assert m["num_queries"] == 4
    ref = _ranx_from_files(tmp_path / "beir", tmp_path / "runs" / "bm25.run")
    for k in ("ndcg@10", "recall@100", "mrr@10"):
        assert round(m[k], 3) == round(ref[k], 3), k
    assert m["mrr@10"] > 0.7  # lexical overlap makes these easy


def test_eval_missing_dataset_is_a_clear_usage_error(tmp_path):
    r = _run(["eval", "--dataset", str(tmp_path / "nope"), "--model", "bm25", "--out", str(tmp_path / "m.json")])
    assert r.returncode == 2
    assert "corpus.jsonl" in r.stderr + r.stdout


def test_eval_baseline_matches_an_independent_retrieval(tmp_path):
    """The acceptance check, literally: plain sentence-transformers with the model's defaults, exact cosine
    top-100, ranx over the qrels file -> the same numbers as `strata eval --model baseline`."""
    import numpy as np
    from ranx import Qrels, Run, evaluate
    from sentence_transformers import SentenceTransformer

    from strata.embed.encoder import resolve_model
    from strata.sources.beir import read_beir

    _tiny_beir(tmp_path / "beir")
    out = tmp_path / "m.json"
    r = _run(["eval", "--dataset", str(tmp_path / "beir"), "--model", "baseline", "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(out.read_text())

    ds = read_beir(tmp_path / "beir")
    model = SentenceTransformer(resolve_model("baseline"), device="cpu")
    dids = list(ds.corpus)
    D = model.encode([(ds.corpus[d]["title"] + " " + ds.corpus[d]["text"]).strip() for d in dids],
                     normalize_embeddings=True)
    qids = list(ds.queries)
    Q = model.encode([ds.queries[q] for q in qids], normalize_embeddings=True)
    S = Q @ D.T
    run = {q: {dids[j]: float(S[i, j]) for j in np.argsort(-S[i])[:100]} for i, q in enumerate(qids)}
    ref = evaluate(Qrels(ds.qrels), Run(run), ["ndcg@10", "recall@100", "mrr@10"])
    for k, v in ref.items():
        assert round(got[k], 3) == round(float(v), 3), (k, got[k], v)
