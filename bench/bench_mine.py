"""Hard-negative mining: Strata's ANN route vs sentence-transformers ``mine_hard_negatives`` (issue 5).

Same model (packaged all-MiniLM-L6-v2), max_seq_length, batch size, corpus (one catalog's products, text =
title + description), seed queries (train-split labels, grade >= 1 positives), rank window, number of
negatives and absolute margin. Strata = the public pieces of its ANN route, in-process embedding (no Ray):
``DenseRetriever(model, cfg, None).embed`` through the embedding cache, ``embed_space`` + ``ann_candidates`` +
cosine scoring + ``margin_rule``; timed with a COLD cache (fresh ``cache_dir``) and again WARM (same dir).
Peer = ``mine_hard_negatives(..., sampling_strategy="top", use_faiss=True)`` without ``cache_folder`` (cold).

Every measured phase runs in its own child process (so peak RSS is per phase, not the high-water mark of
everything before it), phases alternate peer / strata-cold / strata-warm, and each wall time includes the
model load but not the Python/torch imports. Optionally (``--run-mining``) the full ``run_mining`` job
(Spark + structured routes + margin guard + Delta write, ``use_ray=False``) runs once on a COPY of the
lakehouse, with the cache left warm by the strata phases.

    .venv/bin/python bench/bench_mine.py --lakehouse /tmp/mlh --max-queries 1000 --max-products 10000 --label reduced
    .venv/bin/python bench/bench_mine.py --lakehouse /tmp/mlh --label full --run-mining
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

MINE_SEED = 13  # MineConfig.seed: the query order of MineConfig.max_queries


from peak_rss import PeakRSS  # noqa: E402


# ----------------------------------------------------------------------------------------------- inputs

def build_inputs(a: argparse.Namespace) -> dict:
    """Seeds, corpus and peer pairs, read (never written) from the lakehouse."""
    import pandas as pd

    from strata.text import product_text
    from strata.tables import Lakehouse
    from strata.text import query_bucket

    lh = Lakehouse(a.lakehouse)
    labels = lh.read_arrow("labels").to_pandas()
    seeds = labels[(labels["source"] == a.catalog) & (labels["split"] == "train") & labels["query_norm"].notna()
                   & (labels["query_norm"] != "")].copy()
    seeds = seeds.assign(catalog=a.catalog, origin="human")[
        ["source", "catalog", "query", "query_norm", "product_id", "grade", "origin"]]
    seeds = seeds.drop_duplicates(["catalog", "query_norm", "product_id"])
    qpos = sorted(seeds.loc[seeds["grade"] >= 1, "query_norm"].unique(),
                  key=lambda q: query_bucket(q, f"mine-{MINE_SEED}"))
    if a.max_queries:
        qpos = qpos[: a.max_queries]
    seeds = seeds[seeds["query_norm"].isin(set(qpos))]
    seeds = seeds.sort_values(["catalog", "query_norm", "product_id", "origin", "query"]).reset_index(drop=True)
    qtext = seeds.groupby("query_norm", sort=False)["query"].first()  # one raw text per query, as run_mining
    seeds["query"] = seeds["query_norm"].map(qtext)

    prods = lh.read_arrow("products").to_pandas()
    prods = prods[prods["source"] == a.catalog].sort_values("product_id").reset_index(drop=True)
    if a.max_products and a.max_products < len(prods):
        # Every labelled product of the chosen queries stays (positives must be in the corpus for both tools),
        # the rest is filled up in product_id order.
        need = set(seeds["product_id"])
        keep = prods["product_id"].isin(need)
        room = max(a.max_products - int(keep.sum()), 0)
        keep |= (~keep).cumsum().le(room) & ~keep
        prods = prods[keep].reset_index(drop=True)
    texts = [product_text(t, d) for t, d in zip(prods["title"], prods["description"])]
    text_of = dict(zip(prods["product_id"], texts))
    pos = seeds[(seeds["grade"] >= 1) & seeds["product_id"].isin(text_of)]
    pairs = pd.DataFrame({"query": pos["query"], "positive": pos["product_id"].map(text_of)}).drop_duplicates()
    return {"seeds": seeds, "product_ids": list(prods["product_id"]), "texts": texts,
            "peer_queries": list(pairs["query"]), "peer_positives": list(pairs["positive"])}


# ------------------------------------------------------------------------------------------ child phases

def _child_common(a):
    import torch

    torch.set_num_threads(a.threads)
    with open(a.inputs, "rb") as f:
        return pickle.load(f)


def phase_peer(a, inp) -> dict:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    from strata.embed.encoder import resolve_model

    ds = Dataset.from_dict({"query": inp["peer_queries"], "positive": inp["peer_positives"]})
    t0 = time.perf_counter()
    model = SentenceTransformer(resolve_model("baseline"), device="cpu", local_files_only=True)
    model.max_seq_length = a.seq
    out = mine_hard_negatives(ds, model, corpus=inp["texts"], range_min=a.range_min, range_max=a.range_max,
                              absolute_margin=a.margin, num_negatives=a.negatives, sampling_strategy="top",
                              use_faiss=True, batch_size=a.batch_size, output_format="triplet", verbose=False)
    secs = time.perf_counter() - t0
    pairs = sorted(set(zip(out["query"], out["negative"])))
    queries = {q for q, _ in pairs}
    return {"seconds": round(secs, 2), "triplets": len(out), "candidates": len(pairs),
            "queries_in": len(set(inp["peer_queries"])), "queries_with_negatives": len(queries),
            "negatives_per_query": round(len(pairs) / max(len(queries), 1), 3), "_pairs": pairs}


def phase_strata(a, inp) -> dict:
    from strata.embed.config import EmbedConfig
    from strata.embed.retriever import DenseRetriever
    from strata.mine.ann import ann_candidates, embed_space
    from strata.mine.config import MineConfig
    from strata.mine.guard import margin_rule

    seeds = inp["seeds"]
    cfg = MineConfig(catalogs=[a.catalog], n_ann=a.negatives, rank_min=a.range_min, rank_max=a.range_max,
                     index="flat", absolute_margin=a.margin, relative_margin=None, use_judge=False)
    ecfg = EmbedConfig(batch_size=a.batch_size, max_seq_length=a.seq, cache_dir=a.cache, backend=a.backend)
    t0 = time.perf_counter()
    dense = DenseRetriever("baseline", ecfg, None, name="mine")
    space = embed_space(a.catalog, inp["product_ids"], inp["texts"], list(seeds["query"]), dense.embed)
    t_embed = time.perf_counter() - t0
    ann, stats = ann_candidates(space, seeds, cfg)
    t_ann = time.perf_counter() - t0 - t_embed
    ann["score"] = space.cosine(list(ann["query"]), list(ann["product_id"]))
    sc = seeds.assign(score=space.cosine(list(seeds["query"]), list(seeds["product_id"])))
    best = sc[sc["grade"] >= 1].groupby("query_norm")["score"].max()
    ann["positive_score"] = ann["query_norm"].map(best)
    kept, removed = margin_rule(ann, cfg)
    secs = time.perf_counter() - t0
    text_of = dict(zip(inp["product_ids"], inp["texts"]))
    pairs = sorted(set(zip(kept["query"], kept["product_id"].map(text_of))))
    nq = kept["query_norm"].nunique()
    return {"seconds": round(secs, 2), "embed_seconds": round(t_embed, 2), "search_seconds": round(t_ann, 2),
            "guard_seconds": round(secs - t_embed - t_ann, 2), "index": stats["index"],
            "ann_candidates": int(len(ann)), "removed": removed, "candidates": int(len(kept)),
            "queries_in": int(seeds.loc[seeds["grade"] >= 1, "query_norm"].nunique()),
            "queries_with_negatives": int(nq), "negatives_per_query": round(len(kept) / max(nq, 1), 3),
            "_pairs": pairs}


def phase_run_mining(a, inp) -> dict:
    from strata.config_base import SplitConfig
    from strata.embed.config import EmbedConfig
    from strata.engines import EngineConfig
    from strata.engines import Engines
    from strata.mine.config import MineConfig
    from strata.mine.job import run_mining
    from strata.tables import Lakehouse

    cfg = MineConfig(catalogs=[a.catalog], n_ann=a.negatives, rank_min=a.range_min, rank_max=a.range_max,
                     absolute_margin=a.margin, relative_margin=None, use_judge=False, max_queries=a.max_queries)
    ecfg = EmbedConfig(batch_size=a.batch_size, max_seq_length=a.seq, cache_dir=a.cache, backend=a.backend)
    t0 = time.perf_counter()
    with Engines(EngineConfig(ray_num_cpus=2)) as eng:
        res = run_mining(eng, Lakehouse(a.lakehouse), cfg, SplitConfig(), ecfg, None, "bench-mine", use_ray=False)
        secs = time.perf_counter() - t0
    return {"seconds": round(secs, 2), "job_seconds": res.seconds, "timings": res.timings, "rows": res.rows,
            "by_source": res.by_source, "removed": res.removed, "index": res.index}


def child_main(a) -> None:
    inp = _child_common(a)
    fn = {"peer": phase_peer, "strata": phase_strata, "run_mining": phase_run_mining}[a.phase]
    res = fn(a, inp)
    res["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    Path(a.result).write_text(json.dumps(res, default=str))
    sys.stdout.flush()
    os._exit(0)  # skip Spark / delta-rs teardown noise; the result is written


# ------------------------------------------------------------------------------------------------ parent

def run_phase(a, phase: str, inputs: Path, cache: Path | None, lakehouse: str | None = None) -> dict:
    out = Path(a.work) / f"result_{phase}_{time.time_ns()}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--inputs", str(inputs),
           "--result", str(out), "--catalog", a.catalog, "--negatives", str(a.negatives),
           "--range-min", str(a.range_min), "--range-max", str(a.range_max), "--margin", str(a.margin),
           "--batch-size", str(a.batch_size), "--seq", str(a.seq), "--threads", str(a.threads),
           "--backend", a.backend,
           "--lakehouse", lakehouse or a.lakehouse]
    if cache is not None:
        cmd += ["--cache", str(cache)]
    if a.max_queries:
        cmd += ["--max-queries", str(a.max_queries)]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with PeakRSS() as mem:
        subprocess.run(cmd, check=True)
    res = json.loads(out.read_text())
    res.update(process_seconds=round(time.perf_counter() - t0, 2), peak_rss_mb=round(mem.peak / 2**20),
               load_avg_1m=[round(load0, 2), round(os.getloadavg()[0], 2)])
    print(phase, {k: v for k, v in res.items() if k != "_pairs"}, flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lakehouse", required=True, help="read only (run_mining works on a copy)")
    ap.add_argument("--catalog", default="homedepot")
    ap.add_argument("--max-queries", type=int, default=None, help="seed queries (None = all train queries)")
    ap.add_argument("--max-products", type=int, default=None, help="corpus size (None = the whole catalog)")
    ap.add_argument("--negatives", type=int, default=5)
    ap.add_argument("--range-min", type=int, default=5)
    ap.add_argument("--range-max", type=int, default=50)
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="torch", help="Strata's embed.backend (the peer: fp32 sentence-transformers)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds of peer / strata cold / strata warm (0 = only --run-mining)")
    ap.add_argument("--strata-first", action="store_true", help="order strata cold / warm / peer in each round")
    ap.add_argument("--run-mining", action="store_true", help="also run the full run_mining job once (warm cache)")
    ap.add_argument("--label", default=None, help="key of this run in the JSON (default: reduced/full)")
    ap.add_argument("--work", default="/tmp/strata-bench-mine")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "mine.json"))
    # child-process arguments
    ap.add_argument("--phase", choices=["peer", "strata", "run_mining"], help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase:
        child_main(a)
        return

    label = a.label or ("full" if not (a.max_queries or a.max_products) else "reduced")
    work = Path(a.work) / label
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    a.work = str(work)
    t = time.perf_counter()
    inp = build_inputs(a)
    inputs = work / "inputs.pkl"
    inputs.write_bytes(pickle.dumps(inp))
    res: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python bench/bench_mine.py " + " ".join(sys.argv[1:]),
        "params": {k: getattr(a, k) for k in ("catalog", "max_queries", "max_products", "negatives", "range_min",
                                              "range_max", "margin", "batch_size", "seq", "threads", "repeats",
                                              "strata_first", "backend")},
        "inputs": {"products": len(inp["product_ids"]), "seed_pairs": int(len(inp["seeds"])),
                   "queries": int(inp["seeds"].loc[inp["seeds"]["grade"] >= 1, "query_norm"].nunique()),
                   "peer_pairs": len(inp["peer_queries"]), "distinct_texts": len(set(inp["texts"])),
                   "prepare_seconds": round(time.perf_counter() - t, 2)},
        "peer": [], "strata_cold": [], "strata_warm": [],
    }
    overlap = None
    if a.repeats == 0:  # run_mining only
        for k in ("peer", "strata_cold", "strata_warm"):
            res.pop(k)
    for r in range(a.repeats):
        cache = work / f"cache_{r}"
        if not a.strata_first:
            res["peer"].append(run_phase(a, "peer", inputs, None))
        res["strata_cold"].append(run_phase(a, "strata", inputs, cache))
        res["strata_warm"].append(run_phase(a, "strata", inputs, cache))
        if a.strata_first:
            res["peer"].append(run_phase(a, "peer", inputs, None))
        if overlap is None:
            p = {tuple(x) for x in res["peer"][-1]["_pairs"]}
            s = {tuple(x) for x in res["strata_cold"][-1]["_pairs"]}
            overlap = {"both": len(p & s), "peer_only": len(p - s), "strata_only": len(s - p),
                       "jaccard": round(len(p & s) / max(len(p | s), 1), 4)}
    for k in ("peer", "strata_cold", "strata_warm"):
        for x in res.get(k, []):
            x.pop("_pairs", None)
    res["pair_overlap_peer_vs_strata"] = overlap

    def med(k, f="seconds"):
        xs = sorted(x[f] for x in res[k])
        return xs[len(xs) // 2]

    res["ratios_strata_over_peer"] = None if a.repeats == 0 else {
        "time_cold": round(med("strata_cold") / med("peer"), 3),
        "time_warm": round(med("strata_warm") / med("peer"), 3),
        "peak_rss_cold": round(med("strata_cold", "peak_rss_mb") / med("peer", "peak_rss_mb"), 3),
        "peak_rss_warm": round(med("strata_warm", "peak_rss_mb") / med("peer", "peak_rss_mb"), 3),
        "candidates": round(med("strata_cold", "candidates") / max(med("peer", "candidates"), 1), 3),
    }
    if a.run_mining:
        lh_copy = work / "lakehouse"
        shutil.copytree(a.lakehouse, lh_copy)
        cache = work / (f"cache_{a.repeats - 1}" if a.repeats else "cache_mining")
        res["run_mining"] = run_phase(a, "run_mining", inputs, cache, str(lh_copy))
        res["run_mining"]["cache"] = "warm (left by the strata phases)" if a.repeats else "cold (fresh cache_dir)"
        shutil.rmtree(work / "cache_mining", ignore_errors=True)
        shutil.rmtree(lh_copy, ignore_errors=True)

    out = Path(a.out)
    allres = json.loads(out.read_text()) if out.exists() else {}
    allres.setdefault("benchmark", "mine")
    allres.setdefault("runs", {})[label] = res
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(allres, indent=2, default=str) + "\n")
    print(json.dumps({k: res.get(k) for k in ("inputs", "ratios_strata_over_peer", "pair_overlap_peer_vs_strata",
                                               "run_mining")},
                     indent=2))
    for r in range(a.repeats):
        shutil.rmtree(work / f"cache_{r}", ignore_errors=True)


if __name__ == "__main__":
    main()
