"""Scaling curves (issue 10): each stage at 1x, 2x, 4x and 8x input on this machine — wall time, rows/s, peak
memory, and the growth exponent of time (slope of log seconds vs log rows: 1 = linear).

Inputs are real. 1x = the first ``--hd-rows`` (2,000) records of Home Depot ``train.csv`` and the first
``--log-rows`` (2,000) records of each Best Buy search-log file (and catalog); kx = the first k times as many (larger real slices:
Home Depot has 66k records, the Best Buy log files 30k / 7.6k / 28k, so the test log file caps below 8x at
the default size and the row counts say so). Each factor gets its own lakehouse, built by the ingest stage
and carried through the others:

- ingest: Home Depot (adapter + MERGE) and Best Buy (catalog + the search log through Spark).
- features: category enrichment of the Home Depot products (MiniLM vs the Google taxonomy's Hardware and
  Home & Garden branches, 1,557 paths) + the features job (5 tables).
- embed: the Home Depot catalog through Ray Data (1 actor, 0.5 CPU, max_seq_length 64), vectors + index;
  it fills a fresh embedding cache.
- mining: ``run_mining`` over both catalogs, structured + ANN routes, margin guard, no judge; the Home Depot
  product vectors come from the cache the embed stage filled (the 874 Best Buy products and all seed queries
  are embedded here), so this times mostly the mining work itself.
- judge: the distilled judge (``--judge``; default: a tiny 1-layer judge trained here on toy pairs) scores
  ``--judge-pairs`` x k mined pairs through the Ray actor pool into ``judgments``.
- train: Stage 1 for ``--train-steps`` steps at ``--train-batch`` x k queries per step (1 positive + 3
  negatives each) on the 1x lakehouse's training examples; steps/s from the optimisation loop only.

Every (stage, factor) runs in its own child process (fresh Spark + Ray), so its peak memory is its own:
peak RSS of the child and all its children (Ray workers), sampled every 0.25 s (``bench/peak_rss.py``).
Seconds exclude starting Spark/Ray (reported separately as ``startup_s``).

    .venv/bin/python bench/bench_scale.py --judge /tmp/judge_hd     # all stages; writes scale.json + scale.md
    .venv/bin/python bench/bench_scale.py --stages ingest --hd-rows 8000 --log-rows 3700 \
        --label "(1x = 8,000 Home Depot + 3,700 per log file)" --work /tmp/strata-bench-scale-ingest --merge

The second adds a larger ingest series (ingest is cheap; at the shared sizes its fixed cost hides the growth).
On 2 cores the first takes ~16 minutes, the second ~25 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "bench"))

from peak_rss import PeakRSS  # noqa: E402

STAGES = ("ingest", "features", "embed", "mine", "judge", "train")
# What "rows" counts per stage, and one detail column for the table.
ROWS = {"ingest": "records read", "features": "products + search events", "embed": "products embedded",
        "mine": "training examples written", "judge": "pairs judged", "train": "examples per step"}
NOTE = {
    "ingest": ("search-log records", lambda d: d.get("bestbuy-small->search_events")),
    "features": ("products enriched (the main cost)", lambda d: d.get("enriched")),
    "embed": ("dim", lambda d: d.get("dim")),
    "mine": ("candidates / ANN+embedding s", lambda d: f"{d.get('candidates')} / {(d.get('timings') or {}).get('ann')}"),
    "judge": ("scoring pairs/s", lambda d: d.get("scoring_pairs_per_s")),
    "train": ("", lambda d: ""),
}
TAXONOMY_BRANCHES = ("Hardware", "Home & Garden")


# ------------------------------------------------------------------------------------------------ children

def _embed_cfg(work: Path):
    from strata.embed.config import EmbedConfig

    return EmbedConfig(max_seq_length=64, batch_size=128, actors=1, actor_cpus=0.5, cache_dir=str(work / "cache"))


def _table_rows(lh, name: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(str(lh.path(name))).to_pyarrow_dataset().count_rows()


def stage_ingest(eng, lh, work: Path, a, k: int) -> dict:
    from strata.ingest.run import ingest_source

    data = Path(a.data)
    counts = []
    for name, rel, limit in (("homedepot", "homedepot/train.csv.gz", a.hd_rows * k),
                             ("bestbuy-small", "bestbuy-small", a.log_rows * k)):
        counts += ingest_source(name, data / rel, engines=eng, lakehouse=lh, run_id=f"scale{k}", limit=limit)
    records = sum(c["read"] for c in counts if c["target_table"] in ("labels", "search_events"))
    return {"rows": int(records), "detail": {f"{c['source']}->{c['target_table']}": c["read"] for c in counts}}


def stage_features(eng, lh, work: Path, a, k: int) -> dict:
    from strata.features.enrich import EnrichConfig, enrich_categories
    from strata.features.job import run_features

    enrich = enrich_categories(eng.spark, lh, f"scale{k}", EnrichConfig(source="homedepot"))
    res = run_features(eng.spark, lh, f"scale{k}")
    rows = _table_rows(lh, "products") + _table_rows(lh, "search_events")
    return {"rows": rows, "detail": {"enriched": enrich["read"], "assigned": enrich["assigned"],
                                     **{c["target_table"]: c["read"] for c in res.counts}}}


def stage_embed(eng, lh, work: Path, a, k: int) -> dict:
    from strata.embed.stage import embed_catalog

    res = embed_catalog(eng, lh, "homedepot", _embed_cfg(work), work / "embed")
    return {"rows": res.products, "detail": {"dim": res.dim}}


def stage_mine(eng, lh, work: Path, a, k: int) -> dict:
    from strata.config_base import SplitConfig
    from strata.mine.config import MineConfig
    from strata.mine.job import run_mining

    res = run_mining(eng, lh, MineConfig(), SplitConfig(), _embed_cfg(work), None, f"scale{k}", use_ray=True)
    return {"rows": res.rows, "detail": {"by_source": res.by_source, "candidates": res.removed.get("candidates"),
                                         "timings": res.timings}}


def stage_judge(eng, lh, work: Path, a, k: int) -> dict:
    from strata.judge.config import JudgeConfig
    from strata.judge.job import read_candidates, run_judging

    ex = lh.read_arrow("training_examples", columns=["catalog", "query", "query_norm", "product_id", "source"]
                       ).to_pandas()
    ex = ex[ex["source"] != "human"].sort_values(["catalog", "query_norm", "product_id"]).head(a.judge_pairs * k)
    prods = lh.read_arrow("products", columns=["source", "product_id", "title", "description"]).to_pandas()
    ex = ex.merge(prods, left_on=["catalog", "product_id"], right_on=["source", "product_id"], how="left",
                  suffixes=("_ex", ""))
    cands = read_candidates(ex.assign(source=ex["catalog"])[["source", "query", "query_norm", "product_id", "title",
                                                            "description"]])
    cfg = JudgeConfig(backend="distilled", model=a.judge, batch_size=64, actors=1, actor_cpus=0.5)
    summary = run_judging(eng, lh, cands, cfg, f"scale{k}", use_ray=True)
    return {"rows": int(len(cands)), "detail": {k2: v for k2, v in summary.items() if isinstance(v, (int, float, str))}}


def stage_train(eng, lh, work: Path, a, k: int) -> dict:
    from strata.train.config import TrainConfig
    from strata.train.runner import train

    batch = a.train_batch * k
    cfg = TrainConfig(max_seq_length=48, cpus_per_worker=2, threads=2, checkpoint_every=1000, spelling_rate=0.0,
                      catalogs=["homedepot"],
                      stage1={"max_steps": a.train_steps, "queries_per_batch": batch, "negatives": 3, "epochs": 100})
    s1 = train(eng, lh, cfg, "1", work / f"train-b{batch}")["stages"][0]
    examples = batch * 4
    return {"rows": examples, "detail": {"batch_queries": batch, "steps": s1["steps"],
                                         "examples_per_s": s1["examples_per_s"],
                                         "steps_per_s": round(s1["examples_per_s"] / examples, 4),
                                         "stage_seconds": s1["seconds"]}}


def child(a) -> None:
    from strata.engines import EngineConfig
    from strata.engines import Engines
    from strata.tables import Lakehouse

    k, work = a.factor, Path(a.work) / f"x{a.factor}"
    lh_dir = (Path(a.work) / "x1" if a.child == "train" else work) / "lh"
    lh = Lakehouse(lh_dir)
    fn = globals()[f"stage_{a.child}"]
    t0 = time.perf_counter()
    with Engines(EngineConfig(ray_num_cpus=2)) as eng:
        eng.spark.sql("SELECT 1").collect()
        if a.child in ("embed", "mine", "judge", "train"):
            eng.ray()
        startup = time.perf_counter() - t0
        with PeakRSS(every=0.25, include_self=True) as mem:
            t1 = time.perf_counter()
            out = fn(eng, lh, work, a, k)
            secs = time.perf_counter() - t1
    out.update({"stage": a.child, "factor": k, "seconds": round(secs, 2), "startup_s": round(startup, 1),
                "rows_per_s": round(out["rows"] / secs, 1) if secs > 0 else None,
                "peak_mb": round(mem.peak / 2**20)})
    Path(a.result).write_text(json.dumps(out, default=str))


# -------------------------------------------------------------------------------------------------- parent

def setup_factor(a, k: int) -> None:
    """A fresh folder per factor with the Google taxonomy slice (fixed size, not timed) for enrichment."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from strata.sources.google_taxonomy import load_google_taxonomy
    from strata.tables import spec

    work = Path(a.work) / f"x{k}"
    shutil.rmtree(work, ignore_errors=True)
    tax = load_google_taxonomy(Path(a.data) / "google-taxonomy").tables["taxonomy"]
    tax = tax[tax["path"].map(lambda p: p[0] in TAXONOMY_BRANCHES)]
    write_deltalake(str(work / "lh" / "taxonomy"), pa.Table.from_pandas(tax, schema=spec("taxonomy").schema,
                                                                         preserve_index=False))


def fit_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y on log x."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return round(sum((p[0] - mx) * (p[1] - my) for p in pts) / den, 3) if den else None


def _series(r: dict) -> str:
    return r.get("series") or r["stage"]


def summarize(runs: list[dict]) -> dict:
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(_series(r), []).append(r)
    out = {}
    for series, rs in by.items():
        stage = rs[0]["stage"]
        rs = sorted(rs, key=lambda r: r["factor"])
        ok = [r for r in rs if "error" not in r]
        xs, ts = [r["rows"] for r in ok], [r["seconds"] for r in ok]
        if stage == "train":  # time per step vs batch
            ts = [1 / r["detail"]["steps_per_s"] for r in ok if r["detail"].get("steps_per_s")]
        out[series] = {"exponent": fit_exponent(xs, ts),
                      "exponent_4x_8x": fit_exponent(xs[-2:], ts[-2:]) if len(ok) >= 2 else None,
                      "peak_mb_growth_1x_8x": (ok[-1]["peak_mb"] - ok[0]["peak_mb"]) if len(ok) >= 2 else None}
    return out


def markdown(res: dict) -> str:
    commands = "  \n".join(f"`{c}`" for c in res.get("commands", [res["command"]]))
    lines = [f"### Scaling on this machine ({res['date']})", "",
             f"Command(s): {commands}  ", f"Machine: {res['machine']['platform']}, {res['machine']['cpus']} CPUs, "
             f"{res['machine']['mem_gb']} GB; load average at start {res['machine']['load_start']}, at end "
             f"{res['machine']['load_end']}.  ",
             "Seconds = the stage alone (Spark/Ray start-up excluded); peak MB = RSS of the stage's process and its "
             "Ray workers; exponent = slope of log(seconds) on log(rows) over 1x..8x (1.0 = linear; fixed costs "
             "pull it below 1), and over 4x..8x only.", ""]
    order = list(dict.fromkeys(_series(r) for r in sorted(res["runs"], key=lambda r: STAGES.index(r["stage"]))))
    for series in order:
        rs = [r for r in res["runs"] if _series(r) == series]
        stage = rs[0]["stage"]
        s = res["summary"].get(series, {})
        lines += [f"**{series}** — exponent {s.get('exponent')} (1x..8x), {s.get('exponent_4x_8x')} (4x..8x)", ""]
        if stage == "train":
            lines += ["(exponent of seconds per step on examples per step)", "",
                      "| batch (queries) | examples/step | steps/s | examples/s | peak MB |", "|---|---|---|---|---|"]
            for r in sorted(rs, key=lambda r: r["factor"]):
                d = r.get("detail", {})
                lines.append(f"| {d.get('batch_queries')} | {r.get('rows')} | {d.get('steps_per_s')} | "
                             f"{d.get('examples_per_s')} | {r.get('peak_mb')} |")
        else:
            lines += [f"| size | rows ({ROWS[stage]}) | seconds | rows/s | peak MB | {NOTE[stage][0]} |",
                      "|---|---|---|---|---|---|"]
            for r in sorted(rs, key=lambda r: r["factor"]):
                if "error" in r:
                    lines.append(f"| {r['factor']}x | - | failed: {r['error'][:80]} | - | - | - |")
                else:
                    lines.append(f"| {r['factor']}x | {r['rows']} | {r['seconds']} | {r['rows_per_s']} | "
                                 f"{r['peak_mb']} | {NOTE[stage][1](r.get('detail') or {})} |")
        lines.append("")
    return "\n".join(lines)


def _tiny_judge(work: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests" / "judge"))
    from judge_toys import synthetic_pairs

    from strata.judge.config import JudgeTrainConfig
    from strata.judge.trainer import train_distilled

    out = work / "tiny-judge"
    if not (out / "judge.json").is_file():
        train_distilled(synthetic_pairs(10), out, JudgeTrainConfig(name="tiny-judge", layers=1, batch_size=16,
                                                                   max_pairs=160, lr=3e-4, max_length=32, threads=1))
    return str(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("STRATA_DATA") or str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--work", default="/tmp/strata-bench-scale")
    ap.add_argument("--factors", default="1,2,4,8")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--hd-rows", type=int, default=2000, help="Home Depot records at 1x")
    ap.add_argument("--log-rows", type=int, default=2000, help="Best Buy records per log file (and catalog) at 1x")
    ap.add_argument("--judge", default=None, help="a trained distilled judge dir (default: a tiny toy judge)")
    ap.add_argument("--judge-pairs", type=int, default=200, help="mined pairs judged at 1x")
    ap.add_argument("--train-batch", type=int, default=8, help="queries per step at 1x")
    ap.add_argument("--train-steps", type=int, default=6)
    ap.add_argument("--label", default=None, help="name these runs' series '<stage> <label>' (e.g. a larger 1x)")
    ap.add_argument("--merge", action="store_true", help="add to the runs already in --out (other series kept)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale.json"))
    ap.add_argument("--md", default=str(ROOT / "bench" / "results" / "scale.md"))
    ap.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    ap.add_argument("--factor", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--render-only", action="store_true", help="rewrite --md from --out, run nothing")
    a = ap.parse_args()
    if a.render_only:
        Path(a.md).write_text(markdown(json.loads(Path(a.out).read_text())) + "\n")
        return
    if a.child:
        child(a)
        sys.stdout.flush()
        os._exit(0)  # delta-rs / Ray teardown can abort after a clean run (see tests/conftest.py)

    import psutil

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    factors = [int(f) for f in a.factors.split(",")]
    stages = [s for s in STAGES if s in a.stages.split(",")]
    if "judge" in stages and not a.judge:
        a.judge = _tiny_judge(work)
    res = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
                       "load_start": [round(x, 2) for x in os.getloadavg()]},
           "params": {k: v for k, v in vars(a).items() if k not in ("child", "factor", "result")}, "runs": []}
    t0 = time.perf_counter()
    for k in factors:
        if "ingest" in stages:
            setup_factor(a, k)
        for stage in stages:
            result = work / f"x{k}" / f"{stage}.json"
            result.parent.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, __file__, "--child", stage, "--factor", str(k), "--result", str(result),
                    *[f"--{n.replace('_', '-')}={v}" for n, v in vars(a).items()
                      if n in ("data", "work", "hd_rows", "log_rows", "judge", "judge_pairs", "train_batch",
                               "train_steps") and v is not None]]
            p = subprocess.run(argv, capture_output=True, text=True)
            if p.returncode != 0 or not result.is_file():
                run = {"stage": stage, "factor": k, "error": (p.stderr or p.stdout)[-2000:]}
            else:
                run = json.loads(result.read_text())
            if a.label:
                run["series"] = f"{stage} {a.label}"
            res["runs"].append(run)
            print(json.dumps({x: run.get(x) for x in ("stage", "factor", "rows", "seconds", "rows_per_s", "peak_mb",
                                                       "error")}), flush=True)
    res["total_seconds"] = round(time.perf_counter() - t0, 1)
    res["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    if a.merge and Path(a.out).is_file():
        prev = json.loads(Path(a.out).read_text())
        mine = {_series(r) for r in res["runs"]}
        res["runs"] = [r for r in prev["runs"] if _series(r) not in mine] + res["runs"]
        res["commands"] = [*prev.get("commands", [prev["command"]]), res["command"]]
        res["total_seconds"] = round(prev.get("total_seconds", 0) + res["total_seconds"], 1)
        res["machine"]["load_start"] = prev["machine"]["load_start"]
        res["date"] = f"{prev['date']}, merged {res['date']}"
    res["summary"] = summarize(res["runs"])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2, default=str))
    Path(a.md).write_text(markdown(res) + "\n")
    print(json.dumps(res["summary"], indent=2))


if __name__ == "__main__":
    main()
