"""Judging throughput: the Ray Data judging job vs a plain single-process loop over the same judge.

    python bench/bench_judge.py --lakehouse /tmp/judge_lh --judge /tmp/judge_hd --pairs 512

Candidates are the first N labelled (query, product) pairs of the lakehouse (dev split). The loop calls the
judge one batch at a time (how the in-process job used to call it); ``in_process_job`` is
``run_judging(use_ray=False)``, which now hands the judge windows of up to 16 batches that it sorts by length;
``one_call`` is a single ``predict_proba`` over all pairs (bench_distill.py's teacher). The Ray job (whose actors
get the same windows; they used to get single batches) is timed
twice: scoring only (results discarded: the pure Ray Data overhead against the loop) and end to end with
the per-chunk MERGE into a scratch ``judgments`` table. Ray start-up is excluded (paid once per run).
Writes bench/results/judge.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lakehouse", required=True)
    ap.add_argument("--judge", required=True)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "judge.json"))
    a = ap.parse_args()

    from strata.engines import EngineConfig
    from strata.engines import Engines
    from strata.judge.backends import load_judge
    from strata.judge.config import JudgeConfig
    from strata.judge.job import judge_frame, read_candidates, run_judging
    from strata.judge.pairs import load_pairs
    from strata.tables import Lakehouse

    src = Lakehouse(a.lakehouse)
    pairs = load_pairs(src)
    pairs = pairs[pairs["split"] == "dev"].iloc[: a.pairs]
    cands = read_candidates(pairs[["source", "query", "query_norm", "product_id", "product_text"]])
    n = len(cands)
    cfg = JudgeConfig(backend="distilled", model=str(Path(a.judge).resolve()), batch_size=a.batch_size,
                      chunk_rows=256, actors=1, actor_cpus=0.5)
    res: dict = {"pairs": n, "judge": cfg.model, "batch_size": a.batch_size, "cpus": os.cpu_count(),
                 "machine": platform.processor() or platform.machine()}

    # single-process loop
    judge = load_judge(cfg, threads=os.cpu_count())
    t0 = time.perf_counter()
    for s in range(0, n, a.batch_size):
        part = cands.iloc[s : s + a.batch_size]
        judge_frame(judge, {c: part[c].to_numpy(dtype=object) for c in part.columns})
    res["local_loop_pairs_per_s"] = round(n / (time.perf_counter() - t0), 2)
    res["judge_id"] = judge.judge_id
    t0 = time.perf_counter()
    judge.predict_proba(list(cands["query"]), list(cands["product_text"]))
    res["one_call_pairs_per_s"] = round(n / (time.perf_counter() - t0), 2)
    del judge
    with tempfile.TemporaryDirectory() as tmp:
        s0 = run_judging(None, Lakehouse(tmp), cands, cfg.model_copy(update={"chunk_rows": 4096}), "bench-in-process",
                         use_ray=False, writer=lambda part: None)
    res["in_process_job_pairs_per_s"] = s0["pairs_per_s"]
    res["in_process_vs_loop_ratio"] = round(s0["pairs_per_s"] / res["local_loop_pairs_per_s"], 3)

    with Engines(EngineConfig(ray_num_cpus=os.cpu_count())) as eng:
        eng.ray()
        with tempfile.TemporaryDirectory() as tmp:
            lh = Lakehouse(tmp)
            s1 = run_judging(eng, lh, cands, cfg, "bench-score-only", writer=lambda part: None)
            res["ray_job_scoring_only_pairs_per_s"] = s1["pairs_per_s"]
            s2 = run_judging(eng, Lakehouse(Path(tmp) / "lh2"), cands, cfg, "bench-e2e")
            res["ray_job_end_to_end_pairs_per_s"] = s2["pairs_per_s"]
            res["ray_job_merge_seconds"] = s2["write_seconds"]
    res["ray_vs_loop_ratio_scoring_only"] = round(res["ray_job_scoring_only_pairs_per_s"]
                                                  / res["local_loop_pairs_per_s"], 3)
    res["ray_vs_loop_ratio_end_to_end"] = round(res["ray_job_end_to_end_pairs_per_s"]
                                                / res["local_loop_pairs_per_s"], 3)
    res["load_avg_at_end"] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
