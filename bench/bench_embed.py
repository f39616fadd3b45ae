"""Embedding throughput: Strata's Ray Data actor pool, per inference backend (``embed.backend``: torch,
torch-bf16, onnx, onnx-int8), vs plain in-process sentence-transformers ``encode`` (the peer: fp32, same model).
Each backend is also timed in-process (the same encoder in the driver, as Strata embeds small inputs), which
shows the engine's own speed without Ray's per-job actor start and model load.

Same model, texts, batch size, sequence length and cores; runs are interleaved (peer, strata per backend, peer,
...) so machine noise hits all alike, and the ratio of medians is the number to read. Ray start-up is excluded
(it is paid once per job) but each Ray run includes actor start and model load, as a real job does; the ONNX
export is cached by model id, so it is made once, before the timed runs, as in a real job after the first.

With ``--beir DEV_FOLDER`` (a run's ``beir/homedepot-dev``) it also scores the off-the-shelf model under each
backend on that dev set (full corpus, nDCG@10 with the paired bootstrap against torch): the quality the faster
backend keeps. ``--cache`` reuses a run's embedding cache (vectors are cached per model id and backend).

    .venv/bin/python bench/bench_embed.py --n 4000 --repeats 3 --beir runs/demo/beir/homedepot-dev \
        --cache runs/.cache/embeddings
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from strata.embed.config import EmbedConfig  # noqa: E402
from strata.engines import EngineConfig
from strata.ingest.config import default_data_root
from strata.engines import Engines  # noqa: E402


def home_depot_titles(n: int) -> list[str]:
    path = Path(os.environ.get("STRATA_DATA") or default_data_root()) / "homedepot" / "train.csv.gz"
    seen: dict[str, None] = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            seen.setdefault(row["product_title"], None)
            if len(seen) >= n:
                break
    return list(seen)


def backend_quality(eng, args, backends: list[str]) -> dict:
    """nDCG@10 of the off-the-shelf model on a BEIR dev folder under each backend, paired against torch."""
    from strata.embed.retriever import DenseRetriever
    from strata.evaluate.beir_eval import sample_queries
    from strata.evaluate.metrics import evaluate_run
    from strata.evaluate.significance import paired_bootstrap
    from strata.sources.beir import read_beir

    ds = read_beir(args.beir)
    doc_ids = list(ds.corpus)
    queries = sample_queries(ds.judged_queries(), args.max_queries)
    qrels = {q: ds.qrels[q] for q in queries}
    out: dict = {"dev": str(args.beir), "docs": len(doc_ids), "queries": len(queries)}
    per_query = {}
    for b in backends:
        cfg = EmbedConfig(batch_size=args.batch_size, max_seq_length=args.max_seq_length, actors=1,
                          actor_cpus=0.5, backend=b, cache_dir=args.cache)
        r = DenseRetriever("baseline", cfg, engines=eng, name=b)
        t = time.perf_counter()
        r.index(doc_ids, [ds.doc_text(d) for d in doc_ids])
        run = r.search(queries, 100)
        m = evaluate_run(qrels, run, per_query=True)
        per_query[b] = m["per_query"]["ndcg@10"]
        out[b] = {"ndcg@10": round(m["ndcg@10"], 4), "recall@100": round(m.get("recall@100", float("nan")), 4),
                  "seconds": round(time.perf_counter() - t, 1)}
    for b in backends:
        if b != "torch" and "torch" in per_query:
            c = paired_bootstrap(per_query["torch"], per_query[b], metric="ndcg@10")
            out[b]["vs_torch"] = {"diff": round(c.diff, 4), "ci95": [round(c.ci_low, 4), round(c.ci_high, 4)]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-seq-length", type=int, default=48)
    ap.add_argument("--backends", default="torch,torch-bf16,onnx-int8", help="embed.backend values to time")
    ap.add_argument("--beir", type=Path, default=None, help="a BEIR dev folder: nDCG@10 per backend too")
    ap.add_argument("--max-queries", type=int, default=500)
    ap.add_argument("--cache", default=None, help="embedding cache dir for the quality part")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embed.json")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b]

    import torch
    from sentence_transformers import SentenceTransformer

    from strata.embed.encoder import resolve_model
    from strata.embed.ray_embed import embed_texts

    import numpy as np

    from strata.embed.encoder import encode, load_encoder

    texts = home_depot_titles(args.n)
    cfgs = {b: EmbedConfig(batch_size=args.batch_size, max_seq_length=args.max_seq_length, actors=1, actor_cpus=0.5,
                           backend=b) for b in backends}
    for b in backends:
        if b != "torch":
            load_encoder("baseline", backend=b)  # the cached export (made once per model id)
    torch.set_num_threads(os.cpu_count() or 1)
    peer = SentenceTransformer(resolve_model("baseline"), device="cpu")
    peer.max_seq_length = args.max_seq_length
    peer.encode(texts[:256], batch_size=args.batch_size)  # warm-up

    peer_s: list[float] = []
    by_backend: dict[str, dict] = {b: {"seconds": [], "in_process_seconds": [], "max_abs_diff": 0.0, "min_cos": 1.0}
                                   for b in backends}
    local = {b: load_encoder("baseline", max_seq_length=args.max_seq_length, backend=b,
                             **({"threads": os.cpu_count()} if b.startswith("onnx") else {})) for b in backends}
    quality: dict = {}
    with Engines(EngineConfig(ray_num_cpus=os.cpu_count())) as eng:
        eng.ray()
        for _ in range(args.repeats):
            t = time.perf_counter()
            ref = peer.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
            peer_s.append(time.perf_counter() - t)
            for b in backends:
                t = time.perf_counter()
                got = embed_texts(eng, texts, cfgs[b], desc=f"bench {b}")
                r = by_backend[b]
                r["seconds"].append(round(time.perf_counter() - t, 2))
                r["max_abs_diff"] = max(r["max_abs_diff"], float(abs(ref - got).max()))
                r["min_cos"] = min(r["min_cos"], float((ref * got).sum(1).min()))
                t = time.perf_counter()
                encode(local[b], texts, batch_size=args.batch_size)
                r["in_process_seconds"].append(round(time.perf_counter() - t, 2))
        if args.beir is not None:
            quality = backend_quality(eng, args, backends)

    p = statistics.median(peer_s)
    for b, r in by_backend.items():
        med, loc = statistics.median(r["seconds"]), statistics.median(r["in_process_seconds"])
        r.update(texts_per_s=round(len(texts) / med, 1), speedup_over_peer=round(p / med, 2),
                 in_process_texts_per_s=round(len(texts) / loc, 1), in_process_speedup_over_peer=round(p / loc, 2),
                 max_abs_diff=round(r["max_abs_diff"], 5), min_cos=round(r["min_cos"], 5))
    s = statistics.median(by_backend["torch"]["seconds"]) if "torch" in by_backend else float("nan")
    result = {
        "benchmark": "embed",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "command": "python bench/bench_embed.py " + " ".join(sys.argv[1:]),
        "texts": len(texts),
        "batch_size": args.batch_size,
        "max_seq_length": args.max_seq_length,
        "threads": os.cpu_count(),
        "peer_seconds": [round(x, 2) for x in peer_s],
        "peer_texts_per_s": round(len(texts) / p, 1),
        "backends": by_backend,
        **({"strata_seconds": by_backend["torch"]["seconds"], "strata_texts_per_s": round(len(texts) / s, 1),
            "strata_over_peer_time": round(s / p, 2), "max_abs_diff": by_backend["torch"]["max_abs_diff"]}
           if "torch" in by_backend else {}),
        "quality": quality,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    sys.stdout.flush()
    os._exit(0)  # skip delta-rs / Ray teardown noise; results are written


if __name__ == "__main__":
    main()
