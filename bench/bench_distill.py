"""Distil the judge into the bi-encoder: Stage 2 on each training query's retrieved candidates, scored by the judge.

The judge re-orders a Stage 1 model's top 20 better than the model itself (``bench_judge_rerank.py``, +6%
nDCG@10 fused). This measures how much of that a bi-encoder keeps when trained on it:

1. teacher: for up to ``--queries`` Home Depot training queries (``training_examples``, source human, by a
   stable hash), retrieve the top ``--k`` products of the whole catalogue (the BEIR export's corpus) with
   ``--candidates`` (default: the Stage 1 model); each (query, product) gets a teacher score: the human grade where a human label exists,
   else the judge's expected grade p(partial) + 2 p(exact). Written to ``OUT/teacher.parquet`` (or read from
   ``--teacher``, so several variants share one judging pass);
2. train: ``--steps`` steps from the Stage 1 model with ``--distill`` x the distillation loss (``--loss listwise``:
   ``ListwiseDistillLoss``, KL between the teacher's and the student's distribution over the query's rows;
   ``--loss margin-mse``: ``MarginMSELoss`` over pairs of its rows; ``--judged`` of a query's ``--rows`` are kept
   for judge-only candidates) + ``--supcon`` x the Stage 1 loss on the human-labelled rows (``--supcon`` alone,
   ``--distill 0``, is the control: Stage 1 continued on the same rows);
3. quality: full-corpus retrieval on the dev split, as every other training benchmark.

    .venv/bin/python bench/bench_distill.py --lakehouse LH --init S1_MODEL --judge JUDGE --dataset HD_DEV_BEIR \
        --queries 4000 --k 10 --steps 200 --out /tmp/distill/a          # prints and writes OUT/result.json
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

import variant_loop  # noqa: E402  (bench/ is on sys.path when a script runs)


def _pid(product_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(product_id.encode(), digest_size=7).digest(), "big")


def _draw(query_norm: str) -> int:
    return int.from_bytes(hashlib.blake2b(b"distill\x00" + query_norm.encode(), digest_size=8).digest(), "big")


def build_teacher(a, ds) -> "object":
    """One row per training query: its rows' texts, pids, human grade (-1 = none) and teacher score."""
    import numpy as np
    import pandas as pd
    from deltalake import DeltaTable

    from strata.embed.config import EmbedConfig
    from strata.embed.retriever import DenseRetriever
    from strata.judge.model import DistilledJudge

    ex = DeltaTable(str(Path(a.lakehouse) / "training_examples")).to_pandas(
        columns=["catalog", "query", "query_norm", "product_id", "grade", "source"])
    ex = ex[(ex["catalog"] == a.catalog) & (ex["source"] == "human")]
    missing = sorted(set(ex["product_id"]) - set(ds.corpus))
    if missing:
        raise SystemExit(f"{len(missing)} labelled products are not in the corpus of {a.dataset} (e.g. {missing[:3]})")
    qn = sorted(ex["query_norm"].unique(), key=_draw)[: a.queries]
    ex = ex[ex["query_norm"].isin(set(qn))]
    text_of = ex.groupby("query_norm")["query"].first().to_dict()
    human = {(r.query_norm, r.product_id): int(r.grade) for r in ex.itertuples()}
    labelled = ex.groupby("query_norm")["product_id"].agg(set).to_dict()

    t0 = time.perf_counter()
    dense = DenseRetriever(a.candidates or a.init, EmbedConfig(max_seq_length=a.seq, batch_size=128, cache_dir=a.cache_dir))
    ids = list(ds.corpus)
    dense.index(ids, [ds.doc_text(d) for d in ids])
    run = dense.search({q: text_of[q] for q in qn}, a.k)
    t1 = time.perf_counter()
    keys = sorted({(q, d) for q in qn for d in list(run.get(q, {}))[: a.k]} - set(human))
    judge = DistilledJudge(a.judge)
    proba = judge.predict_proba([text_of[q] for q, _ in keys], [ds.doc_text(d) for _, d in keys])
    judged = dict(zip(keys, (proba[:, 1] + 2 * proba[:, 2]).astype(float)))
    t2 = time.perf_counter()

    rows = []
    for q in qn:
        docs = sorted(labelled[q] | set(list(run.get(q, {}))[: a.k]))
        rows.append({"query": text_of[q], "query_norm": q, "texts": [ds.doc_text(d) for d in docs],
                     "pids": [_pid(d) for d in docs], "grades": [human.get((q, d), -1) for d in docs],
                     "teacher": [float(human[(q, d)]) if (q, d) in human else judged[(q, d)] for d in docs]})
    df = pd.DataFrame(rows)
    stats = {"queries": len(df), "rows": int(df["texts"].map(len).sum()), "judged_pairs": len(keys),
             "human_pairs": len(human), "retrieve_seconds": round(t1 - t0, 1), "judge_seconds": round(t2 - t1, 1),
             "judged_mean_expected_grade": round(float(np.mean(list(judged.values()))), 4) if judged else None}
    return df, stats


def sample(b: dict, rng, rows: int, judged: int = 0) -> tuple:
    """``rows`` rows per query: human-labelled rows, leaving ``judged`` slots (as far as the query has judged
    rows) to rows only the judge scored, then judged rows up to ``rows``: (q, texts, owner, grade, pid, teacher).

    ``judged`` 0 is the original draw: every labelled row first. A Home Depot training query has 6.3 labelled
    products on average (half have 7 or more), so with 8 rows that draw leaves the judged candidates, the rows
    only the teacher adds, one slot or none for half the queries."""
    from strata.train.data import judged_split

    queries, texts, owner, grade, pid, teacher = [], [], [], [], [], []
    for q, ts, ps, gs, tv in zip(b["query"], b["texts"], b["pids"], b["grades"], b["teacher"]):
        idx = list(range(len(ts)))
        lab = [i for i in idx if gs[i] >= 0]
        rest = [i for i in idx if gs[i] < 0]
        take = judged_split(lab, rest, rows, judged, rng)
        queries.append(str(q))
        for i in take:
            texts.append(ts[i])
            owner.append(len(queries) - 1)
            grade.append(int(gs[i]))
            pid.append(int(ps[i]))
            teacher.append(float(tv[i]))
    return queries, texts, owner, grade, pid, teacher


def main() -> None:
    ap = variant_loop.arguments(steps=200, lr=2e-5)
    ap.add_argument("--lakehouse", required=True)
    ap.add_argument("--catalog", default="homedepot")
    ap.add_argument("--init", default=None, help="Stage 1 model dir (needed unless --teacher-only)")
    ap.add_argument("--judge", default=None, help="distilled judge dir (needed unless --teacher)")
    ap.add_argument("--candidates", default=None, help="model that retrieves the candidates (default --init; "
                    "'baseline' = the off-the-shelf model, as mining's ANN route)")
    ap.add_argument("--teacher", default=None, help="reuse this teacher.parquet (skips retrieval + judging)")
    ap.add_argument("--queries", type=int, default=4000)
    ap.add_argument("--k", type=int, default=10, help="retrieved candidates per query the judge scores")
    ap.add_argument("--rows", type=int, default=8, help="rows per query per step")
    ap.add_argument("--judged", type=int, default=0, help="of --rows, slots kept for judge-only rows (0 = "
                    "labelled rows first, the original draw)")
    ap.add_argument("--distill", type=float, default=1.0, help="weight of the distillation loss")
    ap.add_argument("--loss", default="listwise", choices=("listwise", "margin-mse"),
                    help="listwise KL over the query's rows, or margin-MSE over pairs of its own rows")
    ap.add_argument("--margin-scale", type=float, default=0.25, help="margin-MSE: cosine units per teacher grade")
    ap.add_argument("--supcon", type=float, default=1.0, help="weight of the Stage 1 loss on the human rows")
    ap.add_argument("--student-temperature", type=float, default=0.05)
    ap.add_argument("--teacher-temperature", type=float, default=0.5)
    ap.add_argument("--cache-dir", default=None, help="embedding cache for retrieval")
    ap.add_argument("--teacher-only", action="store_true", help="stop after writing the teacher")
    a = ap.parse_args()

    import pandas as pd
    import torch
    from sentence_transformers import SentenceTransformer

    from strata.sources.beir import read_beir
    from strata.train.losses import GradedSupConLoss, ListwiseDistillLoss, MarginMSELoss

    if not 0 <= a.judged <= a.rows:
        ap.error(f"--judged must be between 0 and --rows ({a.rows}), got {a.judged}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"args": vars(a), "command": " ".join(sys.argv)}
    if a.teacher:
        data = pd.read_parquet(a.teacher)
    else:
        if not a.judge:
            raise SystemExit("--judge is required without --teacher")
        data, res["teacher"] = build_teacher(a, read_beir(a.dataset, split="dev"))
        data.to_parquet(out / "teacher.parquet")
        print(json.dumps(res["teacher"]), flush=True)
    if a.teacher_only or not a.init:
        (out / "result.json").write_text(json.dumps(res, indent=2))
        return
    model = SentenceTransformer(a.init, device="cpu", local_files_only=True)
    model.max_seq_length = a.seq
    distill = (MarginMSELoss(a.margin_scale) if a.loss == "margin-mse"
               else ListwiseDistillLoss(a.student_temperature, a.teacher_temperature))
    supcon = GradedSupConLoss(0.05, "graded")

    def loss_fn(q, p, o, g, pid, t):
        loss = a.distill * distill(q, p, o, t, pid) if a.distill else 0.0
        if a.supcon:
            lab = g >= 0  # the Stage 1 loss sees the human rows only (their grades are real)
            loss = loss + a.supcon * supcon(q, p[lab], o[lab], g[lab], pid[lab])
        return loss

    data = data.assign(order=data["query_norm"].map(_draw)).sort_values("order").reset_index(drop=True)
    secs, ema = variant_loop.train(model, data[["query", "texts", "pids", "grades", "teacher"]], a.steps, a.batch,
                                   a.lr, lambda b, rng: sample(b, rng, a.rows, a.judged), loss_fn,
                                   seed=a.seed)
    model.save(str(out / "model"))
    res.update(queries=int(len(data)), train_seconds=round(secs, 1), final_loss=ema,
               quality=variant_loop.evaluate(str(out / "model"), a.dataset, a.seq, a.cache_dir))
    (out / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
