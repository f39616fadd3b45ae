"""Two-stage training vs the sentence-transformers MNRL fine-tune: quality on the Home Depot dev split
(full-corpus retrieval) and training throughput, in one run.

Same model (packaged all-MiniLM-L6-v2), data (``training_examples`` of one catalog), batch (queries per
step), products per query (1 positive + N negatives), sequence length and learning rate; MNRL gets the same
number of optimizer steps as Stage 1 + Stage 2 together. Peer = ``SentenceTransformerTrainer`` with
``MultipleNegativesRankingLoss`` on (query, positive, negative_1..N) rows built from the same query groups.

    .venv/bin/python bench/bench_train.py --lakehouse LH --dataset HD_DEV_BEIR --out bench/results/train.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))


from peak_rss import PeakRSS  # noqa: E402  (bench/ is on sys.path when a script runs)


def mnrl_rows(groups, negatives: int, seed: int, positives: int = 1):
    """(anchor, positive, negative_1..N) per query with a positive and N lower-graded products: one row per
    query (its positive drawn once), or with ``positives`` > 1 a row for each of up to that many of its
    top-grade products (each with its own negatives)."""
    rng = random.Random(seed)
    rows = []
    for q, texts, grades in zip(groups["query"], groups["texts"], groups["grades"]):
        top = max(grades)
        if top < 1:
            continue
        pos = [t for t, g in zip(texts, grades) if g == top]
        neg = [t for t, g in zip(texts, grades) if g < top]
        if len(neg) < negatives:
            continue
        # positives=1 keeps the single rng.choice draw, so the earlier peer runs are reproduced exactly
        for p in [rng.choice(pos)] if positives == 1 else rng.sample(pos, min(positives, len(pos))):
            row = {"anchor": q, "positive": p}
            for i, n in enumerate(rng.sample(neg, negatives)):
                row[f"negative_{i + 1}"] = n
            rows.append(row)
    return rows


def train_mnrl(groups, out: Path, steps: int, batch: int, negatives: int, lr: float, seq: int, seed: int,
               positives: int = 1, bf16: bool = False):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, \
        SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from strata.embed.encoder import resolve_model

    rows = mnrl_rows(groups, negatives, seed, positives)
    model = SentenceTransformer(resolve_model("baseline"), device="cpu", local_files_only=True)
    model.max_seq_length = seq
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "st_out"), max_steps=steps, per_device_train_batch_size=batch, learning_rate=lr,
        warmup_ratio=0.1, logging_steps=20, save_strategy="no", report_to=[], seed=seed, use_cpu=True,
        dataloader_drop_last=True, bf16=bf16,
        # several rows per query: keep a query's other positives out of its in-batch negatives
        batch_sampler=BatchSamplers.NO_DUPLICATES if positives > 1 else BatchSamplers.BATCH_SAMPLER)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                         loss=MultipleNegativesRankingLoss(model))
    t0 = time.perf_counter()
    trainer.train()
    secs = time.perf_counter() - t0
    model.save(str(out / "model"))
    return {"model": str(out / "model"), "steps": steps, "rows": len(rows), "seconds": round(secs, 1),
            "examples_per_s": round(steps * batch * (1 + negatives) / secs, 2)}


def throughput(eng, lh, cfg, groups, a, work: Path) -> dict:
    """Stage 1 and the MNRL trainer alternately, ``a.throughput_only`` times each: examples/s, peak RSS,
    per-repeat ratio and medians. Both count examples as queries x (1 + negatives) per optimizer step and
    time the optimisation loop only (model load and Ray start-up excluded)."""
    import statistics

    from strata.train.runner import train

    runs = []

    def mem_of(m: PeakRSS) -> dict:
        return {"peak_rss_mb": round(m.peak / 2**20), "peak_pss_mb": round(m.peak_pss / 2**20)}

    for r in range(a.throughput_only):
        # a fresh folder: Stage 1 resumes from a checkpoint it finds there, and a finished run would time 0 steps
        shutil.rmtree(work / f"tp{r}", ignore_errors=True)
        with PeakRSS(every=0.5, include_self=True, pss=True) as mem:
            s1 = train(eng, lh, cfg, "1", work / f"tp{r}" / "strata")["stages"][0]
        ours = {"examples_per_s": s1["examples_per_s"], **mem_of(mem), "pss_mb_by_process": mem.pss_by_process}
        with PeakRSS(every=0.5, include_self=True, pss=True) as mem:
            st = train_mnrl(groups, work / f"tp{r}" / "mnrl", a.steps1, a.batch, a.negatives, a.lr, a.seq, 13)
        peer = {"examples_per_s": st["examples_per_s"], **mem_of(mem)}
        runs.append({"strata": ours, "mnrl": peer,
                     "ratio": round(ours["examples_per_s"] / peer["examples_per_s"], 3),
                     "rss_ratio": round(ours["peak_rss_mb"] / peer["peak_rss_mb"], 3),
                     "pss_ratio": round(ours["peak_pss_mb"] / peer["peak_pss_mb"], 3)})
        if a.peer_bf16:  # the peer's own mixed precision (its `bf16=True`), as a user on this CPU could run it
            with PeakRSS(every=0.5, include_self=True, pss=True) as mem:
                st = train_mnrl(groups, work / f"tp{r}" / "mnrl16", a.steps1, a.batch, a.negatives, a.lr, a.seq, 13,
                                bf16=True)
            runs[-1]["mnrl_bf16"] = {"examples_per_s": st["examples_per_s"], **mem_of(mem)}
            runs[-1]["ratio_vs_bf16"] = round(ours["examples_per_s"] / st["examples_per_s"], 3)
        print(json.dumps(runs[-1]), flush=True)
    peers = ("strata", "mnrl", "mnrl_bf16") if a.peer_bf16 else ("strata", "mnrl")
    med = {k: {m: statistics.median(x[k][m] for x in runs) for m in ("examples_per_s", "peak_rss_mb", "peak_pss_mb")}
           for k in peers}
    return {"steps": a.steps1, "precision": a.precision, "repeats": runs, "median": med,
            "median_ratio": statistics.median(x["ratio"] for x in runs),
            "median_rss_ratio": statistics.median(x["rss_ratio"] for x in runs),
            "median_pss_ratio": statistics.median(x["pss_ratio"] for x in runs),
            **({"median_ratio_vs_bf16": statistics.median(x["ratio_vs_bf16"] for x in runs)} if a.peer_bf16 else {})}


PEER_INPUTS = ("lakehouse", "catalog", "batch", "negatives", "seq", "lr", "work")


def reusable_peer(a) -> dict | None:
    """The earlier MNRL result if it was trained on exactly these inputs (its model still on disk), else None.
    The peer is deterministic given its inputs (seeded), so retraining it would only spend ~25 minutes."""
    if not a.reuse_peer or not Path(a.reuse_peer).is_file():
        return None
    prev = json.loads(Path(a.reuse_peer).read_text())
    pp, mnrl = prev.get("params", {}), prev.get("mnrl") or {}
    same = all(pp.get(k) == getattr(a, k) for k in PEER_INPUTS) and \
        pp.get("steps1", 0) + pp.get("steps2", 0) == a.steps1 + a.steps2
    if not same or not Path(mnrl.get("model", "")).joinpath("model.safetensors").is_file():
        print(f"not reusing the peer from {a.reuse_peer}: inputs differ or its model is gone", flush=True)
        return None
    return mnrl


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lakehouse", required=True)
    ap.add_argument("--dataset", required=True, help="BEIR folder of the dev split (strata export-beir)")
    ap.add_argument("--catalog", default="homedepot")
    ap.add_argument("--work", default="/tmp/strata-bench-train")
    ap.add_argument("--steps1", type=int, default=250)
    ap.add_argument("--steps2", type=int, default=120)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--negatives", type=int, default=3)
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--lr2", type=float, default=None, help="Stage 2 learning rate (default: the config's)")
    ap.add_argument("--supcon2", type=float, default=None,
                    help="Stage 2 supcon_weight: the Stage 1 loss added to the circle loss (default: the config's)")
    ap.add_argument("--circle2", type=float, default=None, help="Stage 2 circle-loss weight (default: the config's)")
    ap.add_argument("--partials", default=None, help="Stage 1 treatment of partial matches (default: the config's)")
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--skip-train", action="store_true", help="evaluate models already under --work")
    ap.add_argument("--stage2-lakehouse", default=None, metavar="LH2",
                    help="also train Stage 2 from this run's Stage 1 on LH2's training_examples (e.g. mined with "
                         "the judge: the Mine-and-Refine Stage 2 data) and evaluate it as 'stage1+2 judged'")
    ap.add_argument("--reuse-peer", default=None, metavar="JSON",
                    help="take the MNRL model and its numbers from an earlier run's JSON when every MNRL input "
                         "(lakehouse, catalog, steps, batch, negatives, seq, lr, work) matches; else retrain")
    ap.add_argument("--throughput-only", type=int, default=0, metavar="REPEATS",
                    help="no quality: REPEATS head-to-head Stage 1 vs MNRL runs of --steps1 steps (medians)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                    help="Strata's train.precision (the peer trains in fp32, its default)")
    ap.add_argument("--peer-bf16", action="store_true",
                    help="throughput: also time the peer with its own bf16=True")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train.json"))
    a = ap.parse_args()

    from strata.embed.config import EmbedConfig
    from strata.engines import EngineConfig
    from strata.engines import Engines
    from strata.evaluate.beir_eval import evaluate_beir
    from strata.sources.beir import read_beir
    from strata.tables import Lakehouse
    from strata.train.config import TrainConfig
    from strata.train.groups import build_groups, read_groups
    from strata.train.runner import train

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    lh = Lakehouse(a.lakehouse)
    res: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                 "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "params": vars(a)}
    cfg = TrainConfig(max_seq_length=a.seq, cpus_per_worker=2, threads=2, precision=a.precision, checkpoint_every=100, spelling_rate=0.1,
                      catalogs=[a.catalog],
                      stage1={"max_steps": a.steps1, "queries_per_batch": a.batch, "negatives": a.negatives,
                              "lr": a.lr, "epochs": 100, **({"partials": a.partials} if a.partials else {})},
                      stage2={"max_steps": a.steps2, "queries_per_batch": a.batch, "rows_per_query": 1 + a.negatives,
                              "epochs": 100, **({"lr": a.lr2} if a.lr2 else {}),
                              **({"supcon_weight": a.supcon2} if a.supcon2 is not None else {}),
                              **({"circle_weight": a.circle2} if a.circle2 is not None else {})})
    res["stage2_config"] = cfg.stage2.model_dump()
    with Engines(EngineConfig(ray_num_cpus=2)) as eng:
        # The peer's data: the same query groups, without Strata's augmentation.
        groups = read_groups(build_groups(eng.spark, lh, work / "peer_groups", [a.catalog]))
        res["groups"] = int(len(groups))
        if a.throughput_only:
            res["throughput"] = throughput(eng, lh, cfg, groups, a, work)
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(res, indent=2, default=str))
            print(json.dumps(res["throughput"], indent=2))
            return
        peer = reusable_peer(a)
        if a.skip_train:  # evaluate what an earlier run under --work trained (its summary, if written)
            if (work / "strata" / "train.json").is_file():
                res["strata"] = {"stages": json.loads((work / "strata" / "train.json").read_text())["stages"]}
            if peer:
                res["mnrl"] = {**peer, "reused_from": a.reuse_peer}
        else:
            with PeakRSS(every=0.5, include_self=True) as mem:
                ours = train(eng, lh, cfg, "both", work / "strata")
            res["strata"] = {"stages": ours["stages"], "peak_rss_mb": round(mem.peak / 2**20)}
            if peer:
                res["mnrl"] = {**peer, "reused_from": a.reuse_peer}
            else:
                with PeakRSS(every=0.5, include_self=True) as mem:
                    res["mnrl"] = train_mnrl(groups, work / "mnrl", a.steps1 + a.steps2, a.batch, a.negatives,
                                             a.lr, a.seq, 13)
                res["mnrl"]["peak_rss_mb"] = round(mem.peak / 2**20)
            s1 = res["strata"]["stages"][0]
            if not peer:  # a reused peer ran at another time, under another load: no same-run ratio
                res["throughput_ratio_stage1_vs_st"] = round(s1["examples_per_s"] / res["mnrl"]["examples_per_s"], 3)
        ds = read_beir(a.dataset, split="dev")
        models = {"stage1": str(work / "strata" / "stage1" / "model"), "stage1+2": str(work / "strata" / "model"),
                  "mnrl": str((res.get("mnrl") or {}).get("model") or work / "mnrl" / "model")}
        if a.stage2_lakehouse:
            jdir = work / "strata-judged"
            if not (jdir / "model").is_dir():
                with PeakRSS(every=0.5, include_self=True) as mem:
                    j = train(eng, Lakehouse(a.stage2_lakehouse), cfg, "2", jdir, init_model=models["stage1"])
                res["strata_judged"] = {"lakehouse": a.stage2_lakehouse, "stages": j["stages"],
                                        "peak_rss_mb": round(mem.peak / 2**20)}
            models["stage1+2 judged"] = str(jdir / "model")
        ecfg = EmbedConfig(max_seq_length=a.seq, batch_size=128, cache_dir=str(ROOT / "runs" / ".cache" / "embeddings"))
        hybrids = {f"hybrid:bm25+{p}": f"hybrid bm25+{n}" for n, p in models.items() if n != "stage1"}
        sims: dict = {}
        ev = evaluate_beir(ds, ["baseline", "bm25", "hybrid:bm25+baseline", *models.values(), *hybrids],
                           k=100, embed_cfg=ecfg, max_queries=a.max_queries, pair_sims=sims)
        names = {**{v: k for k, v in models.items()}, **hybrids, "hybrid:bm25+baseline": "hybrid bm25+baseline"}
        res["quality"] = {names.get(k, k): {m: v.get(m) for m in ("ndcg@10", "recall@100", "mrr@10")}
                          for k, v in ev["retrievers"].items()}
        # Score separation of the labelled dev pairs (Stage 2's purpose: grade bands usable as thresholds).
        from strata.evaluate.separation import separation_from_sims

        res["separation"] = {}
        for k, by_grade in sims.items():
            sep = separation_from_sims(by_grade)
            th = sep.get("threshold") or {}
            res["separation"][names.get(k, k)] = {
                "auc": {g: round(v, 4) for g, v in sep["auc"].items() if v is not None},
                "mean_sim": {g: round(v["mean"], 3) for g, v in sep["grades"].items()},
                "threshold": {m: round(th[m], 3) for m in ("threshold", "precision", "recall") if m in th}}
    q = res["quality"]
    base, bm25 = q["baseline"]["ndcg@10"], q["bm25"]["ndcg@10"]
    res["relative_ndcg10"] = {k: {"vs_baseline": round(v["ndcg@10"] / base - 1, 4),
                                  "vs_bm25": round(v["ndcg@10"] / bm25 - 1, 4),
                                  "vs_mnrl": round(v["ndcg@10"] / q["mnrl"]["ndcg@10"] - 1, 4)}
                              for k, v in q.items()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2, default=str))
    print(json.dumps({k: res[k] for k in ("quality", "relative_ndcg10")}, indent=2))


if __name__ == "__main__":
    main()
