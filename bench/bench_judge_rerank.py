"""Is the judge a better ranker than the retriever? Re-rank a dense model's top K by the judge's expected grade.

Before distilling a judge into the bi-encoder (or re-ranking with it online), it has to order a query's top
candidates better than the bi-encoder does. This takes ``--queries`` hashed dev queries (``sample_queries``),
retrieves the full corpus with ``--model``, scores the top ``--k`` with the judge (expected grade
p(partial) + 2 p(exact)), and reports nDCG@10 / MRR@10 of: the dense order, the judge's order of the top K,
and a score fusion (z-scored dense cosine + a x z-scored expected grade, a in ``--alphas``). Ranks below K
keep the dense order.

    .venv/bin/python bench/bench_judge_rerank.py --model MODEL_DIR --judge JUDGE_DIR --dataset HD_DEV_BEIR \
        --queries 300 --k 20 --out bench/results/judge_rerank.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))


def _z(x):
    return (x - x.mean()) / (x.std() + 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="dense model dir (or 'baseline')")
    ap.add_argument("--judge", required=True, help="distilled judge dir (strata judge train)")
    ap.add_argument("--dataset", required=True, help="BEIR folder of the dev split")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=20, help="candidates the judge re-ranks per query")
    ap.add_argument("--alphas", default="0.5,1.0")
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "judge_rerank.json"))
    a = ap.parse_args()

    import numpy as np
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)

    from strata.embed.config import EmbedConfig
    from strata.evaluate.beir_eval import sample_queries
    from strata.evaluate.metrics import evaluate_run
    from strata.embed.retriever import DenseRetriever
    from strata.judge.model import DistilledJudge
    from strata.sources.beir import read_beir

    ds = read_beir(a.dataset, split="dev")
    qs = sample_queries(ds.judged_queries(), a.queries)
    qrels = {q: ds.qrels[q] for q in qs}
    t0 = time.perf_counter()
    dense = DenseRetriever(a.model, EmbedConfig(max_seq_length=a.seq, batch_size=128))
    ids = list(ds.corpus)
    dense.index(ids, [ds.doc_text(d) for d in ids])
    run = dense.search(qs, 100)
    t1 = time.perf_counter()
    judge = DistilledJudge(a.judge)
    keys = [(q, d) for q, res in run.items() for d in list(res)[:a.k]]
    proba = judge.predict_proba([qs[q] for q, _ in keys], [ds.doc_text(d) for _, d in keys])
    grade = proba[:, 1] + 2 * proba[:, 2]
    t2 = time.perf_counter()
    judged: dict[str, dict[str, float]] = {}
    for (q, d), g in zip(keys, grade):
        judged.setdefault(q, {})[d] = float(g)

    def reranked(q: str, top: dict[str, float]) -> dict[str, float]:
        rest = {d: s for i, (d, s) in enumerate(run[q].items()) if i >= a.k}  # cosines <= 1 < 1000 + anything
        return {**{d: 1000.0 + v for d, v in top.items()}, **rest}

    def fused(q: str, alpha: float) -> dict[str, float]:
        docs = list(judged[q])
        f = _z(np.array([run[q][d] for d in docs])) + alpha * _z(np.array([judged[q][d] for d in docs]))
        return reranked(q, dict(zip(docs, f.tolist())))

    metrics = ["ndcg@10", "mrr@10"]
    res = {"dense": evaluate_run(qrels, run, metrics),
           "judge_order": evaluate_run(qrels, {q: reranked(q, judged[q]) for q in run}, metrics)}
    for alpha in (float(x) for x in a.alphas.split(",")):
        res[f"fused_a{alpha:g}"] = evaluate_run(qrels, {q: fused(q, alpha) for q in run}, metrics)
    out = {"command": " ".join([".venv/bin/python", "bench/bench_judge_rerank.py", *sys.argv[1:]]),
           "machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "judge_id": judge.judge_id, "pairs_judged": len(keys),
           "seconds": {"retrieve": round(t1 - t0, 1), "judge": round(t2 - t1, 1)}, "queries": len(qs), "k": a.k,
           "results": res}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
