"""`make bench`: prepare the inputs, run every benchmark, collect the raw numbers, regenerate BENCHMARKS.md.

    .venv/bin/python bench/run_all.py                      # everything (what `make bench` runs)
    .venv/bin/python bench/run_all.py --only embed,mine    # some benchmarks (the others' results are kept)
    .venv/bin/python bench/run_all.py --quick              # smoke sizes; results to bench/results/quick/
    .venv/bin/python bench/run_all.py --render             # no runs: re-render from bench/results/*.json
    .venv/bin/python bench/run_all.py --dry-run            # print the plan (prepare steps + commands) only

Benchmarks (each script times Strata and its peer in the same process, interleaved where it repeats):

    embed             bench_embed.py   Ray Data actor pool vs in-process sentence-transformers  (--repeats)
    data              bench_data.py    ingest + features on Sail; log aggregations vs DuckDB; 1x/4x/16x log
    judge             bench_judge.py   Ray Data judging job vs a plain loop over the same judge
    mine              bench_mine.py    ANN mining route vs sentence-transformers mine_hard_negatives (--repeats)
    train             bench_train.py   Stage 1 + 2 vs the sentence-transformers MNRL trainer: quality + speed
    train_throughput  bench_train.py --throughput-only N   Stage 1 vs MNRL examples/s, N paired repeats
    scale             bench_scale.py   (owned by issue 10 part 2; run when the script exists)
    ingest_table      bench_ingest_table.py   catalog + labels: Spark-only table source vs the adapter, 1x..16x
    ann_index         bench_ann_index.py      mining's IVF-PQ (memmap) vs exact flat search, 1x..64x vectors
    demo_precision    bench_demo.py    `strata run --profile demo` as shipped (precision auto) vs the same run in fp32
    local_e2e         bench_demo.py --profile local --variants auto   the product recipe end to end (hours)

Inputs the benchmarks need are prepared here from the real data (../shared/data or $STRATA_DATA) with the
`strata` CLI into a work dir (--work, default $BENCH_WORK or /tmp/strata-bench; its quick/ subdir for
--quick): a lakehouse (`strata ingest` x4, `strata enrich-categories`, `strata features`,
`strata mine run --no-judge` -> training_examples), the Home Depot dev split as BEIR (`strata export-beir`) and
a distilled judge (`strata judge train`). Each prepare step leaves a stamp in WORK/.done/ and is skipped on the
next run (--fresh starts over). A benchmark whose input is missing or whose prepare step failed is skipped
with the reason printed and recorded; a failed benchmark makes the exit code 1 (the others still run).

Outputs: bench/results/<name>.json (written by each script), bench/results/all.json (every results JSON, raw,
with machine, date and the exact command run_all ran), and the generated blocks of BENCHMARKS.md between
`<!-- gen:SECTION:start -->` / `<!-- gen:SECTION:end -->` (the hand-written text outside them is untouched).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "BENCHMARKS.md"
ALL_JSON = "all.json"


# ================================================================================================ rendering
# Pure functions over dicts: no imports beyond the standard library (tests/bench/test_run_all.py uses them).

@dataclass
class Row:
    """One measured quantity: Strata's values (one per run) against the peer's, from the same run."""

    measure: str
    strata: list[float]
    peer: list[float] | None = None
    peer_label: str = ""
    ratio: float | None = None  # explicit (e.g. median of paired per-repeat ratios); else median/median
    note: str = ""

    def strata_median(self) -> float | None:
        return _median(self.strata)

    def peer_median(self) -> float | None:
        return _median(self.peer or [])

    def ratio_value(self) -> float | None:
        if self.ratio is not None:
            return self.ratio
        s, p = self.strata_median(), self.peer_median()
        if s is None or p is None or p == 0:
            return None
        return s / p


@dataclass
class Block:
    """One benchmark run: provenance + rows."""

    title: str
    command: str
    machine: str
    date: str
    source: str  # results file, repo-relative
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _median(xs: list[float]) -> float | None:
    xs = [float(x) for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool)]
    return statistics.median(xs) if xs else None


def fmt_num(x: float | None) -> str:
    """1,234 / 1,234.5 / 53.7 / 0.98 / 0.0123 — enough digits to read a ratio, thousands separated."""
    if x is None:
        return "—"
    x = float(x)
    if x != x:  # NaN
        return "—"
    a = abs(x)
    if x.is_integer() and a < 1e15:
        return f"{int(x):,}"
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:,.1f}"
    if a >= 1:
        return f"{x:.2f}"
    if a == 0:
        return "0"
    return f"{x:.3g}"


def _cell(values: list[float] | None, missing: str = "—") -> str:
    xs = [v for v in (values or []) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not xs:
        return missing
    med = fmt_num(statistics.median(xs))
    if len(xs) == 1:
        return med
    return f"{med} ({fmt_num(min(xs))}–{fmt_num(max(xs))})"


def _machine_str(m: Any) -> str:
    if m is None:
        return ""
    if isinstance(m, str):
        return m
    if isinstance(m, dict):
        parts = []
        if m.get("platform"):
            parts.append(str(m["platform"]))
        elif m.get("machine"):
            parts.append(str(m["machine"]))
        cpus = m.get("cpus") or m.get("cores")
        if cpus:
            parts.append(f"{cpus} cores")
        if m.get("python"):
            parts.append(f"Python {m['python']}")
        load = m.get("load_avg_at_start")
        if isinstance(load, (int, float)):
            parts.append(f"load {load:.1f} at start")
        return ", ".join(parts) or json.dumps(m, sort_keys=True)
    return str(m)


def _prov(raw: dict, meta: dict | None, documented: dict | None, key: str) -> tuple[str, str]:
    """(value, where from) for command / machine / date: run_all's record of the run ('run_all'), else the
    JSON's own field ('json'), else what the hand-written section documents ('documented'), else the results
    file's commit date for ``date`` ('file'), else ('not recorded', '')."""
    if meta and meta.get(key):
        return str(meta[key]), "run_all"
    if raw.get(key):
        v = _machine_str(raw[key]) if key == "machine" else str(raw[key])
        if key == "machine" and raw.get("cpus") and "core" not in v:
            v += f", {raw['cpus']} cores"
        return v, "json"
    if key == "machine" and raw.get("cpus"):
        return f"{raw['cpus']} cores", "json"
    if documented and documented.get(key):
        return str(documented[key]), "documented"
    if key == "date" and raw.get("_file_date"):
        return str(raw["_file_date"]), "file"
    return "not recorded", ""


def new_block(title: str, raw: dict, meta: dict | None, documented: dict | None, src: str) -> Block:
    """A block with its provenance; a note says which fields the results JSON itself does not record."""
    vals = {k: _prov(raw, meta, documented, k) for k in ("command", "machine", "date")}
    b = Block(title, vals["command"][0], vals["machine"][0], vals["date"][0], src)
    doc = [k for k, (_, w) in vals.items() if w == "documented"]
    if doc:
        b.notes.append(f"{' and '.join(doc)} as documented in the hand-written text below (not recorded in the "
                       "JSON)")
    if vals["date"][1] == "file":
        b.notes.append("date = last commit (else modification) date of the results file (not recorded in the JSON)")
    return b


# --------------------------------------------------------------------------------------- per-benchmark rows

def blocks_embed(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    n = raw.get("texts")
    b = new_block("embedding inference", raw, meta, doc, src)
    peer = "sentence-transformers `encode`, in-process"
    b.rows.append(Row(f"wall time for {fmt_num(n)} texts, s (lower = better)", raw.get("strata_seconds", []),
                      raw.get("peer_seconds", []), peer))
    if n:
        b.rows.append(Row("texts/s (higher = better)", [n / s for s in raw.get("strata_seconds", []) if s],
                          [n / s for s in raw.get("peer_seconds", []) if s], peer,
                          note="per run; the ratio is the inverse of the time ratio"))
    for name, r in (raw.get("backends") or {}).items():
        if name == "torch" or not n:
            continue
        b.rows.append(Row(f"texts/s, embed.backend={name} (higher = better)", [n / s for s in r["seconds"] if s],
                          [n / s for s in raw.get("peer_seconds", []) if s], peer + " (fp32)",
                          note=f"vectors: min cosine {r['min_cos']} to the peer's"))
    for name, r in (raw.get("backends") or {}).items():
        if n and r.get("in_process_seconds"):
            b.rows.append(Row(f"texts/s in-process, embed.backend={name} (higher = better)",
                              [n / s for s in r["in_process_seconds"] if s],
                              [n / s for s in raw.get("peer_seconds", []) if s], peer + " (fp32)",
                              note="the same encoder in the driver: no Ray actor start or model load"))
    q = raw.get("quality") or {}
    for name in (raw.get("backends") or {}):
        if name in q:
            vs = q[name].get("vs_torch")
            b.rows.append(Row(f"nDCG@10 off the shelf, embed.backend={name} ({q['queries']} dev queries, "
                              f"{fmt_num(q['docs'])} products)", [q[name]["ndcg@10"]],
                              note=(f"vs torch {vs['diff']:+.4f} (95% CI {vs['ci95'][0]:+.4f}..{vs['ci95'][1]:+.4f})"
                                    if vs else "")))
    if "max_abs_diff" in raw:
        b.notes.append(f"vectors agree to {raw['max_abs_diff']:.1e} (max abs difference); batch "
                       f"{raw.get('batch_size')}, max_seq_length {raw.get('max_seq_length')}")
    return [b]


def blocks_ddp(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    """Ray Train with two DDP workers against one worker on the same run's data, steps and global batch."""
    b = new_block("training: two DDP workers (gloo) vs one, same data, steps and global batch", raw, meta, doc, src)
    v, cmp = raw.get("variants") or {}, raw.get("comparisons") or {}
    one = v.get("w1") or {}
    for name, label in (("w2", "2 workers x half the batch"), ("w1-seed", "1 worker, another seed (noise floor)")):
        if name not in v or not one:
            continue
        c = cmp.get(f"{name} vs w1") or {}
        b.rows.append(Row(f"dev nDCG@10, {label} ({one.get('queries')} queries)", [v[name]["ndcg@10"]],
                          [one["ndcg@10"]], "1 worker", ratio=None,
                          note=(f"diff {c['delta']:+.4f}, 95% CI {c['ci95'][0]:+.4f}..{c['ci95'][1]:+.4f}" if c else "")))
        for s_new, s_one in zip(v[name]["stages"], one["stages"]):
            b.rows.append(Row(f"stage {s_new['stage']}: final loss (EMA), {label}", [s_new["final_loss"]],
                              [s_one["final_loss"]], "1 worker",
                              note="rank 0's loss: with 2 workers over half the batch (half the in-batch negatives)"
                              if name == "w2" else ""))
            b.rows.append(Row(f"stage {s_new['stage']}: examples/s, {label}", [s_new["examples_per_s"]],
                              [s_one["examples_per_s"]], "1 worker"))
    return [b]


def blocks_demo(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    """The demo run end to end as the profile ships (precision auto) against the same run in fp32."""
    b = new_block("`strata run --profile demo`: precision auto vs fp32, cold caches", raw, meta, doc, src)
    v = raw.get("variants") or {}
    a, f = v.get("auto") or {}, v.get("fp32") or {}
    if not (a and f):
        return [b]
    b.rows.append(Row("wall s (lower = better)", [a["wall_seconds"]], [f["wall_seconds"]], "the same run, fp32"))
    for step, secs in a["step_seconds"].items():
        if f["step_seconds"].get(step) and max(secs, f["step_seconds"][step]) >= 30:
            b.rows.append(Row(f"- {step}, s", [secs], [f["step_seconds"][step]], "fp32"))
    for which, label in (("model", "fine-tuned"), ("baseline", "off the shelf")):
        c = raw.get(f"auto_vs_fp32_{which}") or {}
        b.rows.append(Row(f"dev nDCG@10, {label}", [a["ndcg@10"]["fine-tuned" if which == "model" else "baseline"]],
                          [f["ndcg@10"]["fine-tuned" if which == "model" else "baseline"]], "fp32", ratio=None,
                          note=f"paired diff {c.get('diff', 0):+.4f}, 95% CI {c['ci95'][0]:+.4f}..{c['ci95'][1]:+.4f}"
                          if c else ""))
    b.notes.append("each run's commit: " + ", ".join(f"{n} {(r.get('git') or {}).get('commit', '?')[:7]}"
                                                    for n, r in v.items()))
    return [b]


def blocks_local(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    """The product recipe (`--profile local`) end to end, one run as the profile ships: wall time, the steps
    that take at least 30 s, and every retriever's dev nDCG@10 (no peer: the peers' rows are the other blocks)."""
    b = new_block(f"`strata run --profile {raw.get('profile', 'local')}` end to end, cold caches", raw, meta, doc, src)
    run = (raw.get("variants") or {}).get("auto") or {}
    if not run:
        return [b]
    b.rows.append(Row("wall s", [run["wall_seconds"]], note=f"{run['wall_seconds'] / 3600:.2f} h"))
    for step, secs in run["step_seconds"].items():
        if secs >= 30:
            b.rows.append(Row(f"- {step}, s", [secs]))
    for name, v in run.get("ndcg@10", {}).items():
        b.rows.append(Row(f"dev nDCG@10, {name}", [v]))
    b.notes.append(f"commit {(run.get('git') or {}).get('commit', '?')[:7]}; quality on the dev split")
    return [b]


def blocks_data(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    b = new_block("ingest + features (Sail + Delta)", raw, meta, doc, src)
    ing, feat = raw.get("ingest") or {}, raw.get("features") or {}
    if ing:
        b.rows.append(Row(f"ingest, all sources: records/s ({fmt_num(ing.get('records_read'))} records)",
                          [ing.get("records_per_s")], note=f"{fmt_num(ing.get('seconds'))} s wall, peak RSS "
                          f"{fmt_num(ing.get('peak_rss_mb'))} MB"))
        for s in ing.get("by_source", []):
            b.rows.append(Row(f"- ingest {s['source']}: records/s", [s.get("records_per_s")],
                              note=f"{fmt_num(s.get('records_read'))} records in {fmt_num(s.get('seconds'))} s"))
    if feat:
        b.rows.append(Row(f"features job (5 tables), s ({fmt_num(feat.get('search_events'))} events)",
                          [feat.get("seconds")], note=f"peak RSS {fmt_num(feat.get('peak_rss_mb'))} MB"))
    duck = raw.get("duckdb_reference")
    if duck:
        b.rows.append(Row("query_stats + query_product_engagement, s (lower = better)", [duck.get("sail_seconds")],
                          [duck.get("seconds")], "DuckDB, same SQL (delta-rs read and Delta write included)"
                          if "write_seconds" in duck else "DuckDB, same SQL (delta-rs read included)",
                          ratio=duck.get("ratio_sail_over_duckdb"),
                          note=f"DuckDB: {fmt_num(duck.get('read_seconds'))} s read + "
                               f"{fmt_num(duck.get('sql_seconds'))} s SQL"
                               + (f" + {fmt_num(duck['write_seconds'])} s write" if "write_seconds" in duck else "")))
    scaling = raw.get("scaling") or []
    base = next((s for s in scaling if s.get("factor") == 1), None)
    for s in scaling:
        if base is None or s is base:
            continue
        b.rows.append(Row(f"log tables at {s['factor']}x log ({fmt_num(s.get('events'))} events), s",
                          [s.get("log_tables_seconds")], [base.get("log_tables_seconds")],
                          f"same job at 1x ({fmt_num(base.get('events'))} events)",
                          ratio=s.get("time_ratio_vs_1x"), note=f"linear would be {s['factor']}"))
    return [b]


def blocks_judge(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    b = new_block("judging throughput", raw, meta, doc, src)
    loop = raw.get("local_loop_pairs_per_s")
    peer = "plain single-process loop (`judge_frame`)"
    b.rows.append(Row("Ray Data job, scoring only: pairs/s (higher = better)",
                      [raw.get("ray_job_scoring_only_pairs_per_s")], [loop], peer,
                      ratio=raw.get("ray_vs_loop_ratio_scoring_only")))
    b.rows.append(Row("Ray Data job, end to end incl. MERGE: pairs/s (higher = better)",
                      [raw.get("ray_job_end_to_end_pairs_per_s")], [loop], peer,
                      ratio=raw.get("ray_vs_loop_ratio_end_to_end"),
                      note=f"MERGE {fmt_num(raw.get('ray_job_merge_seconds'))} s"))
    b.notes.append(f"{fmt_num(raw.get('pairs'))} pairs, batch {raw.get('batch_size')}, judge "
                   f"`{raw.get('judge_id', raw.get('judge'))}`")
    load = raw.get("load_avg_at_end")
    if isinstance(load, list) and load:
        b.notes.append(f"1-minute load average at the end: {load[0]:.1f} on {raw.get('cpus')} cores")
    return [b]


def blocks_mine(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    out = []
    for label, run in (raw.get("runs") or {}).items():
        m = meta if (meta and meta.get("label") == label) else None
        b = new_block(f"mining, run `{label}`", {**run, "_file_date": raw.get("_file_date")}, m, doc, src)
        peer_runs = [x for x in run.get("peer", []) if "seconds" in x]
        not_done = [x.get("status") for x in run.get("peer", []) if "seconds" not in x]
        peer = "sentence-transformers `mine_hard_negatives`"

        def vals(k, f="seconds"):
            return [x[f] for x in run.get(k, []) if f in x]

        pv = (lambda f="seconds": [x[f] for x in peer_runs if f in x])
        b.rows += [
            Row("wall s, cold embedding cache (lower = better)", vals("strata_cold"), pv(), peer),
            Row("wall s, warm embedding cache (lower = better)", vals("strata_warm"), pv(), peer,
                note="peer has no cache: the same cold run"),
            Row("peak RSS MB, cold", vals("strata_cold", "peak_rss_mb"), pv("peak_rss_mb"), peer),
            Row("peak RSS MB, warm", vals("strata_warm", "peak_rss_mb"), pv("peak_rss_mb"), peer),
            Row("(query, negative) pairs produced", vals("strata_cold", "candidates"), pv("candidates"), peer,
                note="different margin rules: not a quality comparison"),
            Row("queries with >= 1 negative", vals("strata_cold", "queries_with_negatives"),
                pv("queries_with_negatives"), peer),
        ]
        if run.get("run_mining"):
            rm = run["run_mining"]
            b.rows.append(Row("full `run_mining` job, s", [rm.get("seconds")], note=str(rm.get("cache", ""))))
        inp = run.get("inputs") or {}
        if inp:
            b.notes.append(f"{fmt_num(inp.get('queries'))} queries x {fmt_num(inp.get('products'))} products")
        for s in not_done:
            b.notes.append(f"peer: {s}")
        if run.get("partial"):
            b.notes.append(f"partial run: {run.get('note', '')}".strip())
        out.append(b)
    return out


def _quality_rows(q: dict) -> list[Row]:
    rows = []
    labels = {"stage1": "Stage 1", "stage1+2": "Stage 1 + 2",
              "stage1+2 judged": "Stage 1 + 2 on judge-annotated mining"}
    for k in labels:
        if k not in q:
            continue
        for metric in ("ndcg@10", "recall@100", "mrr@10"):
            v = q[k].get(metric)
            for peer_key, peer_name in (("mnrl", "MNRL fine-tune (same data, steps)"),
                                        ("baseline", "all-MiniLM-L6-v2 off the shelf"), ("bm25", "BM25 (bm25s)")):
                if peer_key in q and (metric == "ndcg@10" or peer_key == "mnrl"):
                    rows.append(Row(f"{labels[k]}: {metric} (higher = better)", [v], [q[peer_key].get(metric)],
                                    peer_name))
    return rows


def blocks_train(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    b = new_block("two-stage fine-tune vs MNRL", raw, meta, doc, src)
    tp = raw.get("throughput")
    if tp:  # --throughput-only REPEATS
        b.title = "training throughput, Stage 1 vs MNRL (paired repeats)"
        reps = tp.get("repeats", [])
        b.rows.append(Row(f"examples/s, {tp.get('steps')} steps per run (higher = better)",
                          [r["strata"]["examples_per_s"] for r in reps], [r["mnrl"]["examples_per_s"] for r in reps],
                          "sentence-transformers MNRL trainer", ratio=tp.get("median_ratio"),
                          note="ratio = median of the per-repeat ratios"))
        b.rows.append(Row("peak RSS MB (summed over processes)", [r["strata"]["peak_rss_mb"] for r in reps],
                          [r["mnrl"]["peak_rss_mb"] for r in reps], "sentence-transformers MNRL trainer",
                          ratio=tp.get("median_rss_ratio")))
        if all("peak_pss_mb" in r["strata"] for r in reps):
            b.rows.append(Row("peak PSS MB (shared pages counted once)", [r["strata"]["peak_pss_mb"] for r in reps],
                              [r["mnrl"]["peak_pss_mb"] for r in reps], "sentence-transformers MNRL trainer",
                              ratio=tp.get("median_pss_ratio")))
        if tp.get("median_ratio_vs_bf16") is not None:
            b.rows.append(Row("examples/s against the peer's own bf16=True (higher = better)",
                              [r["strata"]["examples_per_s"] for r in reps],
                              [r["mnrl_bf16"]["examples_per_s"] for r in reps], "MNRL trainer, bf16=True",
                              ratio=tp["median_ratio_vs_bf16"], note="ratio = median of the per-repeat ratios"))
        b.notes.append(f"Strata's train.precision = {tp.get('precision', 'fp32')}; the peer trains in fp32 (its "
                       "default) unless the row says otherwise")
        return [b]
    st = (raw.get("strata") or {}).get("stages") or []
    mnrl = raw.get("mnrl") or {}
    peer = "sentence-transformers MNRL trainer"
    if mnrl.get("reused_from"):  # the peer model came from an earlier run: its speed is not a same-run peer
        b.notes.append(f"MNRL peer reused from `{mnrl['reused_from']}` (identical inputs, seeded): quality compared "
                       "here, speed and memory only in the paired-repeats block")
        mnrl = {}
    for s in st:
        is1 = s.get("stage") == 1
        b.rows.append(Row(f"Stage {s.get('stage')}: examples/s, {s.get('steps')} steps (higher = better)",
                          [s.get("examples_per_s")], [mnrl.get("examples_per_s")] if is1 and mnrl else None,
                          peer if is1 and mnrl else "", ratio=raw.get("throughput_ratio_stage1_vs_st") if is1 else None,
                          note=f"{fmt_num(s.get('seconds'))} s; final loss {fmt_num(s.get('final_loss'))}"))
    if mnrl and (raw.get("strata") or {}).get("peak_rss_mb"):
        b.rows.append(Row("peak RSS MB (training)", [raw["strata"]["peak_rss_mb"]], [mnrl.get("peak_rss_mb")], peer,
                          note=f"MNRL: {mnrl.get('steps')} steps in {fmt_num(mnrl.get('seconds'))} s"))
    b.rows += _quality_rows(raw.get("quality") or {})
    if raw.get("groups"):
        b.notes.append(f"{fmt_num(raw['groups'])} training query groups")
    return [b]


def blocks_scale(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    """One row per stage series: the growth exponent of time in input rows, with the 1x and 8x ends."""
    b = new_block("scaling curves (1x, 2x, 4x, 8x input)", raw, meta, doc, src)
    if raw.get("commands"):
        b.notes.append("commands: " + "; ".join(f"`{c}`" for c in raw["commands"]))
    by: dict[str, list[dict]] = {}
    for r in raw.get("runs", []):
        if "error" not in r:
            by.setdefault(r.get("series") or r["stage"], []).append(r)
    for series, rs in by.items():
        rs = sorted(rs, key=lambda r: r["factor"])
        lo, hi = rs[0], rs[-1]
        summ = (raw.get("summary") or {}).get(series, {})
        if lo["stage"] == "train":
            d0, d1 = lo.get("detail") or {}, hi.get("detail") or {}
            note = (f"examples/step {lo['rows']} -> {hi['rows']}; examples/s {fmt_num(d0.get('examples_per_s'))} -> "
                    f"{fmt_num(d1.get('examples_per_s'))}; peak MB {fmt_num(lo['peak_mb'])} -> {fmt_num(hi['peak_mb'])}")
            measure = f"{series}: exponent of s/step in examples/step"
        else:
            note = (f"rows {fmt_num(lo['rows'])} -> {fmt_num(hi['rows'])}; s {fmt_num(lo['seconds'])} -> "
                    f"{fmt_num(hi['seconds'])}; peak MB {fmt_num(lo['peak_mb'])} -> {fmt_num(hi['peak_mb'])}")
            measure = f"{series}: exponent of seconds in rows, 1x..8x (1 = linear)"
        if summ.get("exponent") is not None:
            b.rows.append(Row(measure, [summ["exponent"]], note=note + f"; 4x..8x exponent {summ.get('exponent_4x_8x')}"))
    b.notes.append("per-size tables: `bench/results/scale.md`")
    return [b]


def blocks_ingest_table(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    """Catalog + label ingest per factor: the Spark-only table source against the row-level adapter path."""
    b = new_block("catalog + label ingest: table source (Spark only) vs adapter (driver)", raw, meta, doc, src)
    for r in raw.get("summary", []):
        b.rows.append(Row(f"{r['factor']}x Home Depot ({fmt_num(r['records'])} records), s (lower = better)",
                          [r["table_s"]], [r["adapter_s"]], "`homedepot` adapter, same rows",
                          ratio=r.get("time_ratio_table_adapter"),
                          note=f"peak RSS {fmt_num(r['table_peak_mb'])} MB vs {fmt_num(r['adapter_peak_mb'])} MB; "
                               f"same row counts written: {r.get('same_counts')}"))
    return [b]


def blocks_ann_index(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    """Mining's ANN index per catalog size: IVF-PQ over a disk memmap against exact flat search in RAM."""
    b = new_block("mining ANN index: IVF-PQ from a memmap vs exact flat (FAISS, CPU)", raw, meta, doc, src)
    for r in raw.get("runs", []):
        b.rows.append(Row(f"{fmt_num(r['products'])} products: search s, {fmt_num(raw.get('queries'))} queries, "
                          f"k={raw.get('k')} (lower = better)", [r["ivfpq_search_s"]], [r["flat_search_s"]],
                          "FAISS IndexFlatIP (exact, in RAM)", ratio=r.get("search_ratio_ivfpq_flat"),
                          note=f"recall@k {r['recall_at_k']} at nprobe {r['nprobe']} of {r['nlist']} lists "
                               f"({r.get('recall_refined_at_k')} re-ranking the top {r.get('refine')}k exactly, "
                               f"{fmt_num(r.get('ivfpq_refined_search_s'))} s); index "
                               f"{fmt_num(r['ivfpq_bytes'] / 1e6)} MB vs {fmt_num(r['flat_bytes'] / 1e6)} MB; "
                               f"IVF-PQ build {fmt_num(r['ivfpq_build_s'])} s"))
    b.notes.append(f"vectors: real embeddings ({raw.get('vectors')}) grown with noisy copies (noise "
                   f"{raw.get('noise')}); queries: perturbed real vectors")
    return [b]


def blocks_generic(raw: dict, src: str, meta: dict | None, doc: dict | None) -> list[Block]:
    """A results file without a dedicated renderer: provenance and its headline numbers (leaves named like a
    ratio, median, rate or hours; wall seconds only if there are none of those)."""
    b = new_block(Path(src).stem, raw, meta, doc, src)

    def leaves(d: Any, path: str, words: tuple[str, ...], out: list[Row]) -> None:
        if isinstance(d, dict):
            for k, v in d.items():
                if not str(k).startswith("_"):
                    leaves(v, f"{path}.{k}" if path else str(k), words, out)
        elif isinstance(d, (int, float)) and not isinstance(d, bool) and any(w in path.lower() for w in words):
            out.append(Row(f"`{path}`", [d]))

    rows: list[Row] = []
    leaves(raw, "", ("ratio", "median", "per_s", "hours"), rows)
    if not rows:
        leaves(raw, "", ("seconds",), rows)
    b.rows = rows[:30]
    if len(rows) > 30:
        b.notes.append(f"{len(rows) - 30} more numbers in the JSON")
    md = Path(src).with_suffix(".md")
    if (ROOT / md).exists():
        b.notes.append(f"analysis: `{md}`")
    return [b]


@dataclass
class Bench:
    name: str
    section: str  # BENCHMARKS.md section marker (gen:<section>)
    script: str | None
    result: str  # file name under the results dir
    render: Callable[..., list[Block]]
    needs: tuple[str, ...] = ()
    args: Callable[[argparse.Namespace, dict], list[str]] | None = None
    documented: dict | None = None  # provenance from the hand-written section, for JSONs that lack it


# Section order in BENCHMARKS.md and titles for sections that do not exist yet.
SECTIONS = {"foundation": "Foundation: embedding inference", "data": "Data platform (issue 3)",
            "judge": "Judge (issue 4)", "mine": "Mining (issue 5)", "train": "Training (issue 6)",
            "scale": "Scale (issue 10)", "e2e": "End to end: the demo and the local profile"}


def _args_embed(a, p):
    quality = ["--beir", str(p["work"] / "demo-run" / "beir" / "homedepot-dev"), "--cache", str(p["work"] / "embed-cache")]
    return ["--n", "256", "--repeats", "2"] if a.quick else ["--n", "6000", "--repeats", "3", *quality]


def _args_ddp(a, p):
    return ["--run", str(p["work"] / "demo-run"), "--work", str(p["work"] / "ddp")]


def _args_data(a, p):
    return ["--work", str(p["work"] / "data"), "--data", str(p["data"])] + (["--scales", "1,2"] if a.quick else [])


def _args_judge(a, p):
    return ["--lakehouse", str(p["lh"]), "--judge", str(p["judge"]), "--pairs", "64" if a.quick else "512"]


def _args_mine(a, p):
    if a.quick:
        return ["--lakehouse", str(p["lh"]), "--max-queries", "100", "--max-products", "1000", "--repeats", "1",
                "--label", "quick", "--work", str(p["work"] / "mine")]
    return ["--lakehouse", str(p["lh"]), "--max-queries", "1000", "--max-products", "10000", "--repeats", "3",
            "--label", "reduced", "--work", str(p["work"] / "mine"), "--backend", "auto"]


def _args_train(a, p):
    # The committed train.json's run: 400 + 100 steps at lr 5e-5, all dev queries (full-corpus retrieval).
    return ["--lakehouse", str(p["lh"]), "--dataset", str(p["beir"]), "--work", str(p["work"] / "train"),
            "--steps1", "400", "--steps2", "100", "--lr", "5e-5"]


def _args_train_tp(a, p):
    return ["--lakehouse", str(p["lh"]), "--dataset", str(p["beir"]), "--work", str(p["work"] / "train-tp"),
            "--throughput-only", "1" if a.quick else "3", "--steps1", "3" if a.quick else "60",
            "--precision", "auto", "--peer-bf16"]


def _args_demo(a, p):
    return ["--work", str(p["work"] / "demo-precision")]


def _args_local(a, p):
    return ["--profile", "local", "--variants", "auto", "--work", str(p["work"] / "local-e2e")]


def _args_scale(a, p):
    return []


def _args_ann_index(a, p):
    return ["--vectors", str(p["work"] / "ann-vectors" / "vectors.npy"), "--factors", "1,4" if a.quick else "1,4,16,64"]


def _args_ingest_table(a, p):
    return ["--work", str(p["work"] / "ingest-table"), "--data", str(p["data"]),
            "--factors", "1,2" if a.quick else "1,2,4,8,16"]


BENCHES = [
    Bench("embed", "foundation", "bench/bench_embed.py", "embed.json", blocks_embed, ("demo_run",), _args_embed),
    Bench("data", "data", "bench/bench_data.py", "data.json", blocks_data, (), _args_data,
          documented={"command": "HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_data.py"}),
    Bench("judge", "judge", "bench/bench_judge.py", "judge.json", blocks_judge, ("lakehouse", "judge"), _args_judge,
          documented={"command": "python bench/bench_judge.py --lakehouse /tmp/judge_lh --judge /tmp/judge_hd "
                                 "--pairs 512"}),
    Bench("mine", "mine", "bench/bench_mine.py", "mine.json", blocks_mine, ("lakehouse",), _args_mine),
    Bench("train", "train", "bench/bench_train.py", "train.json", blocks_train,
          ("lakehouse", "enrich", "features", "mining", "beir"), _args_train),
    Bench("train_throughput", "train", "bench/bench_train.py", "train_throughput.json", blocks_train,
          ("lakehouse", "enrich", "features", "mining", "beir"), _args_train_tp),
    Bench("ddp", "train", "bench/bench_ddp.py", "ddp.json", blocks_ddp, ("demo_run",), _args_ddp),
    Bench("demo_precision", "e2e", "bench/bench_demo.py", "demo_precision.json", blocks_demo, (), _args_demo),
    Bench("local_e2e", "e2e", "bench/bench_demo.py", "local_e2e.json", blocks_local, (), _args_local),
    Bench("scale", "scale", "bench/bench_scale.py", "scale.json", blocks_scale, (), _args_scale),
    Bench("ingest_table", "scale", "bench/bench_ingest_table.py", "ingest_table.json", blocks_ingest_table, (),
          _args_ingest_table),
    Bench("ann_index", "scale", "bench/bench_ann_index.py", "ann_index.json", blocks_ann_index, ("embed_vectors",),
          _args_ann_index),
]
BY_NAME = {b.name: b for b in BENCHES}


def render_blocks(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        out.append(f"**{b.title}** — raw numbers: `{b.source}`")
        out.append("")
        out.append("| command | machine | date |")
        out.append("|---|---|---|")
        cmd = b.command.replace("|", "\\|")
        out.append(f"| `{cmd}` | {b.machine} | {b.date} |")
        out.append("")
        out.append("| measure | Strata: median (min–max) | peer | peer: median (min–max) | runs | "
                   "ratio Strata/peer | note |")
        out.append("|---|---:|---|---:|---:|---:|---|")
        for r in b.rows:
            n = len([x for x in r.strata if isinstance(x, (int, float))])
            ratio = r.ratio_value()
            has_peer = bool(r.peer_label)
            out.append(" | ".join([
                f"| {r.measure}", _cell(r.strata), r.peer_label or "—",
                _cell(r.peer, "not completed" if has_peer else "—"), str(n),
                f"**{fmt_num(ratio)}**" if ratio is not None else "—", f"{r.note} |" if r.note else " |",
            ]).rstrip())
        if b.notes:
            out.append("")
            out += [f"- {n}" for n in b.notes]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


GEN_HEADER = ("_Generated by `bench/run_all.py` from the results JSON (edit the hand-written text below, not "
              "this block; `make bench` or `bench/run_all.py --render` rewrites it)._\n\n")


def gen_markers(section: str) -> tuple[str, str]:
    return f"<!-- gen:{section}:start -->", f"<!-- gen:{section}:end -->"


def splice(doc: str, section: str, body: str | None) -> str:
    """Put ``body`` between the section's gen markers: replace an existing generated block, else insert a new
    one right before the hand-written ``<!-- SECTION:start -->`` marker, else append a new section at the end.
    ``body=None`` (no results) leaves a doc without the markers unchanged."""
    start, end = gen_markers(section)
    if start in doc and end in doc:
        i, j = doc.index(start) + len(start), doc.index(end)
        if j < i:
            raise ValueError(f"gen:{section} markers out of order")
        content = body if body is not None else f"_No results yet: `bench/run_all.py --only ...` writes them._\n"
        return doc[:i] + "\n" + GEN_HEADER + content + doc[j:]
    if body is None:
        return doc
    block = f"{start}\n{GEN_HEADER}{body}{end}\n"
    hand = f"<!-- {section}:start -->"
    if hand in doc:
        k = doc.index(hand)
        k = doc.rfind("\n", 0, k) + 1  # start of that line
        return doc[:k] + block + doc[k:]
    title = SECTIONS.get(section, section)
    return doc.rstrip("\n") + f"\n\n## {title}\n{block}"


GEN_BLOCK = re.compile(r"<!-- gen:(?P<name>[\w-]+):start -->.*?<!-- gen:(?P=name):end -->\n?", re.S)


def strip_generated(doc: str) -> str:
    """The document with every generated block (markers included) removed: the hand-written text."""
    return GEN_BLOCK.sub("", doc)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_results(results_dir: Path, prev_all: dict | None = None) -> dict[str, dict]:
    """Every results JSON in the dir (not all.json): name -> {file, sha256, raw, meta}. run_all's record of a
    run (command, date, machine) is kept only while the file is byte-identical to what that run wrote."""
    prev = (prev_all or {}).get("benchmarks", {})
    out: dict[str, dict] = {}
    for p in sorted(results_dir.glob("*.json")):
        if p.name == ALL_JSON:
            continue
        name = p.stem
        try:
            raw = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raw = {"_error": f"unreadable JSON: {e}"}
        digest = sha256(p)
        meta = (prev.get(name) or {}).get("meta")
        if meta and meta.get("sha256") != digest:
            meta = None
        out[name] = {"file": _rel(p), "sha256": digest, "raw": raw, "meta": meta, "file_date": file_date(p)}
    return out


def file_date(p: Path) -> str:
    """The results file's last commit date if it is committed unchanged, else its modification date."""
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(p)], cwd=p.parent, capture_output=True,
                               text=True, timeout=10)
        if dirty.returncode == 0 and not dirty.stdout.strip():
            log = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(p)], cwd=p.parent,
                                 capture_output=True, text=True, timeout=10)
            if log.returncode == 0 and log.stdout.strip():
                return log.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return time.strftime("%Y-%m-%d", time.localtime(p.stat().st_mtime))


def blocks_for(name: str, entry: dict) -> list[Block]:
    spec = BY_NAME.get(name)
    render = spec.render if spec else blocks_generic
    raw = entry["raw"]
    if isinstance(raw, dict) and entry.get("file_date"):
        raw = {**raw, "_file_date": entry["file_date"]}
    if not isinstance(raw, dict):
        raw = {"_error": "results JSON is not an object"}
    if "_error" in raw:
        return [Block(name, "—", "—", "—", entry["file"], notes=[raw["_error"]])]
    return render(raw, entry["file"], entry.get("meta"), spec.documented if spec else None)


def render_doc(doc: str, results: dict[str, dict]) -> str:
    """Rewrite every section's generated block from ``results`` (see load_results)."""
    by_section: dict[str, list[Block]] = {}
    for b in BENCHES:
        if b.name in results:
            by_section.setdefault(b.section, []).extend(blocks_for(b.name, results[b.name]))
    for section in SECTIONS:
        blocks = by_section.get(section)
        doc = splice(doc, section, render_blocks(blocks) if blocks else None)
    return doc


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


# ================================================================================================== running

def machine_info() -> dict:
    info: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count(),
                            "python": platform.python_version(), "platform": platform.platform()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_gb"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    info["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    return info


def machine_line(info: dict) -> str:
    return (f"{info['machine']}, {info['cpus']} cores, Python {info['python']}"
            + (f", {info['cpu_model']}" if info.get("cpu_model") else "")
            + f", load {info['load_avg'][0]:.1f}")


@dataclass
class Step:
    name: str
    cmd: list[str]
    needs: tuple[str, ...] = ()
    check: Callable[[], str | None] = lambda: None  # an input problem -> reason to skip


class Runner:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.work: Path = a.work
        self.logs = self.work / "logs"
        self.stamps = self.work / ".done"
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    "PYTHONUNBUFFERED": "1"}
        self.failed: dict[str, str] = {}  # step/bench -> reason
        self.done: set[str] = set()
        self.records: dict[str, dict] = {}
        self.py = sys.executable

    # -- helpers
    def _cmd_str(self, cmd: list[str]) -> str:
        parts = []
        for c in cmd:
            if c == self.py or c.endswith("/.venv/bin/python"):
                parts.append(".venv/bin/python")
            elif c.endswith("/.venv/bin/strata"):
                parts.append(".venv/bin/strata")
            else:
                parts.append(c.replace(str(ROOT) + "/", ""))
        return "HF_HUB_OFFLINE=1 " + shlex.join(parts)

    def run(self, name: str, cmd: list[str]) -> tuple[int, float, Path]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        print(f"[run_all] {name}: {self._cmd_str(cmd)}\n[run_all]   log: {log}", flush=True)
        t0 = time.perf_counter()
        with open(log, "w") as f:
            rc = subprocess.run(cmd, cwd=ROOT, env=self.env, stdout=f, stderr=subprocess.STDOUT).returncode
        secs = time.perf_counter() - t0
        print(f"[run_all]   {name}: rc={rc} in {secs:,.0f} s", flush=True)
        if rc != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print("[run_all]   last lines of the log:\n" + "\n".join("      " + t for t in tail), flush=True)
        return rc, secs, log

    # -- prepare
    def steps(self) -> dict[str, Step]:
        a, d, lh = self.a, self.a.data, self.work / "lh"
        quick = a.quick
        st: dict[str, Step] = {}

        def need(path: Path) -> Callable[[], str | None]:
            return lambda: None if path.exists() else f"input {path} not found"

        sources = [("google-taxonomy", d / "google-taxonomy" / "taxonomy-with-ids.en-US.txt"),
                   ("homedepot", d / "homedepot" / "train.csv.gz"), ("bestbuy-small", d / "bestbuy-small"),
                   ("bestbuy-catalog", d / "bestbuy-catalog")]
        # --quick: a slice of each source (the taxonomy stays whole: enrichment assigns from it).
        limits = {"homedepot": 5000, "bestbuy-small": 5000, "bestbuy-catalog": 2000} if quick else {}
        for src, path in sources:
            lim = ["--limit", str(limits[src])] if src in limits else []
            st[f"ingest-{src}"] = Step(f"ingest-{src}", self._strata("ingest", "--source", src, "--path", str(path),
                                                                       "--lakehouse", str(lh), *lim), (), need(path))
        st["lakehouse"] = Step("lakehouse", [], tuple(f"ingest-{s}" for s, _ in sources))  # group
        enrich = ["enrich-categories", "--lakehouse", str(lh), "--source", "homedepot"]
        st["enrich"] = Step("enrich", self._strata(*enrich, *(["--limit", "500"] if quick else [])), ("lakehouse",))
        st["features"] = Step("features", self._strata("features", "--lakehouse", str(lh)), ("lakehouse", "enrich"))
        st["beir"] = Step("beir", self._strata("export-beir", "--lakehouse", str(lh), "--dataset", "homedepot",
                                               "--split", "dev", "--out", str(self.work / "hd-dev-beir")),
                          ("ingest-homedepot",))
        mine = ["mine", "run", "--lakehouse", str(lh), "--no-judge", "--report", str(self.work / "mining.json"),
                # --quick: 200 queries, structured routes only (no ANN: it would embed the whole catalog)
                "--set", f"mine.max_queries={'200' if quick else 'null'}", *(["--set", "mine.n_ann=0"] if quick else []),
                "--set", f"embed.cache_dir={self.work / 'embed-cache'}"]
        st["mining"] = Step("mining", self._strata(*mine), ("lakehouse", "enrich", "features"))
        # Real product vectors for the ANN-index benchmark: the Home Depot catalog (titles) through the embed stage.
        st["embed_vectors"] = Step("embed_vectors", self._strata(
            "embed", "--lakehouse", str(lh), "--catalog", "homedepot", "--out", str(self.work / "ann-vectors"),
            "--max-seq-length", "32", "--cache-dir", str(self.work / "embed-cache")), ("ingest-homedepot",))
        # A whole demo run (the graph on the embedded engines): DDP parity reruns its training, the embedding
        # backends are scored on its dev folder with its embedding cache.
        st["demo_run"] = Step("demo_run", self._strata("run", "--profile", "demo", "--out", str(self.work / "demo-run"),
                                                       "--set", f"embed.cache_dir={self.work / 'embed-cache'}"), ())
        if a.judge:
            st["judge"] = Step("judge", [], (), need(a.judge))
        else:
            jt = ["judge", "train", "--lakehouse", str(lh), "--out", str(self.work / "judge"), "--source", "homedepot",
                  "--threads", "2", "--max-length", "64", "--lr", "6e-5"]
            jt += (["--layers", "2", "--max-pairs", "1000", "--max-seconds", "60", "--eval-limit", "200"] if quick
                   else ["--layers", "3", "--max-pairs", "20000", "--max-seconds", "900", "--eval-limit", "2000"])
            st["judge"] = Step("judge", self._strata(*jt), ("ingest-homedepot",))
        return st

    def _strata(self, *args: str) -> list[str]:
        exe = Path(self.py).with_name("strata")
        return ([str(exe)] if exe.exists() else [self.py, "-m", "strata.cli"]) + list(args)

    def ensure(self, name: str, st: dict[str, Step]) -> str | None:
        """Run prepare step ``name`` (and its needs) unless stamped; return a reason if it is unavailable."""
        if name in self.done:
            return None
        if name in self.failed:
            return self.failed[name]
        step = st[name]
        for dep in step.needs:
            why = self.ensure(dep, st)
            if why:
                self.failed[name] = f"needs {dep}: {why}"
                return self.failed[name]
        why = step.check()
        if why:
            self.failed[name] = why
            print(f"[run_all] prepare {name}: SKIPPED: {why}", flush=True)
            return why
        stamp = self.stamps / name
        if not step.cmd or stamp.exists():
            if step.cmd:
                print(f"[run_all] prepare {name}: reusing ({stamp} exists)", flush=True)
            self.done.add(name)
            return None
        if self.a.dry_run:
            print(f"[run_all] prepare {name}: {self._cmd_str(step.cmd)}", flush=True)
            self.done.add(name)
            return None
        rc, secs, log = self.run(f"prepare-{name}", step.cmd)
        self.records.setdefault("prepare", {})[name] = {"command": self._cmd_str(step.cmd), "rc": rc,
                                                        "seconds": round(secs, 1), "log": str(log)}
        if rc != 0:
            self.failed[name] = f"prepare step {name} failed (rc {rc}, log {log})"
            return self.failed[name]
        self.stamps.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"command": self._cmd_str(step.cmd), "date": time.strftime("%Y-%m-%d %H:%M"),
                                     "seconds": round(secs, 1)}) + "\n")
        self.done.add(name)
        return None

    # -- benchmarks
    def bench(self, b: Bench, st: dict[str, Step], results_dir: Path) -> dict:
        if b.script is None or not (ROOT / b.script).exists():
            return self._skip(b, f"{b.script} does not exist")
        if not self.a.data.is_dir():
            return self._skip(b, f"data root {self.a.data} not found (set STRATA_DATA or --data)")
        if b.name == "scale" and self.a.quick:
            return self._skip(b, "not part of --quick (bench_scale.py has its own sizes; run it directly)")
        if b.name == "train" and self.a.quick:
            return self._skip(b, "the quality run (3 models x full-corpus retrieval) is not part of --quick; "
                                 "train_throughput covers the training path")
        for need in b.needs:
            why = self.ensure(need, st)
            if why:
                return self._skip(b, why)
        out = results_dir / b.result
        paths = {"work": self.work, "data": self.a.data, "lh": self.work / "lh", "beir": self.work / "hd-dev-beir",
                 "judge": self.a.judge or (self.work / "judge")}
        cmd = [self.py, str(ROOT / b.script), *b.args(self.a, paths)]
        if '"--out"' in (ROOT / b.script).read_text():  # every bench script takes --out (bench_scale: if it does)
            cmd += ["--out", str(out)]
        cmd += shlex.split(self.a.extra.get(b.name, ""))
        if self.a.dry_run:
            print(f"[run_all] bench {b.name}: {self._cmd_str(cmd)}", flush=True)
            return {"status": "dry-run", "command": self._cmd_str(cmd)}
        before = out.stat().st_mtime if out.exists() else None
        t0 = time.time()
        rc, secs, log = self.run(f"bench-{b.name}", cmd)
        wrote = out.exists() and out.stat().st_mtime != before and out.stat().st_mtime >= t0 - 1
        rec = {"command": self._cmd_str(cmd), "date": time.strftime("%Y-%m-%d %H:%M"),
               "machine": machine_line(machine_info()), "rc": rc, "seconds": round(secs, 1), "log": str(log)}
        if b.name == "mine":
            rec["label"] = cmd[cmd.index("--label") + 1]
        if rc != 0 and wrote:
            # delta-rs can abort in interpreter teardown after a MERGE (see lib/strata/cli.py main) once the
            # results are written: keep them, say so.
            rec["status"] = f"ok (rc {rc} after the results were written)"
        elif rc != 0 or not wrote:
            rec["status"] = f"FAILED (rc {rc}{'' if wrote else ', no results written'}; log {log})"
            self.failed[f"bench-{b.name}"] = rec["status"]
        else:
            rec["status"] = "ok"
        if wrote:
            rec["sha256"] = sha256(out)
        return rec

    def _skip(self, b: Bench, why: str) -> dict:
        print(f"[run_all] bench {b.name}: SKIPPED: {why}", flush=True)
        return {"status": f"skipped: {why}"}


# ===================================================================================================== main

def write_outputs(results_dir: Path, runs: dict[str, dict], mode: str, doc_path: Path | None,
                  summary_path: Path | None, extra: dict | None = None) -> dict:
    prev = None
    all_path = results_dir / ALL_JSON
    if all_path.exists():
        try:
            prev = json.loads(all_path.read_text())
        except json.JSONDecodeError:
            prev = None
    # Fresh run records become the meta of their results file (tied to its hash).
    prev = prev or {"benchmarks": {}}
    for name, rec in runs.items():
        if rec.get("sha256"):
            prev.setdefault("benchmarks", {}).setdefault(name, {})["meta"] = rec
    results = load_results(results_dir, prev)
    for name, entry in results.items():
        entry["summary"] = [{"title": b.title, "command": b.command, "machine": b.machine, "date": b.date,
                             "rows": [{"measure": r.measure, "strata": r.strata, "strata_median": r.strata_median(),
                                       "peer": r.peer_label or None, "peer_values": r.peer,
                                       "peer_median": r.peer_median(), "ratio": r.ratio_value(), "note": r.note}
                                      for r in b.rows], "notes": b.notes}
                            for b in blocks_for(name, entry)]
    last_runs = (prev.get("last_run") or {}) if mode == "render" else {}
    payload = {
        "generator": "bench/run_all.py",
        "mode": mode,
        "rendered_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(),
        "last_run": last_runs if mode == "render" else {"date": time.strftime("%Y-%m-%d %H:%M"), "benchmarks": runs,
                                                        **(extra or {})},
        "benchmarks": results,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    all_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    if doc_path is not None:
        doc_path.write_text(render_doc(doc_path.read_text(), results))
    if summary_path is not None:
        blocks = [b for name, e in results.items() for b in blocks_for(name, e)]
        summary_path.write_text("# Benchmark smoke run (--quick)\n\nNot comparable with BENCHMARKS.md: small sizes.\n\n"
                                + render_blocks(blocks))
    return payload


def _default_data() -> Path:
    env = os.environ.get("STRATA_DATA")
    if env:
        return Path(env)
    for base in (Path.cwd(), ROOT):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return ROOT.parent / "shared" / "data"


def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--only", default="", help="comma-separated benchmarks: " + ",".join(BY_NAME))
    ap.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    ap.add_argument("--quick", action="store_true", help="smoke sizes; results to bench/results/quick/")
    ap.add_argument("--render", action="store_true", help="no runs: re-render BENCHMARKS.md + all.json")
    ap.add_argument("--dry-run", action="store_true", help="print prepare steps and commands, run nothing")
    ap.add_argument("--work", type=Path, default=None, help="work dir (default $BENCH_WORK or /tmp/strata-bench; + /quick with --quick)")
    ap.add_argument("--data", type=Path, default=None, help="real data root (default ../shared/data or $STRATA_DATA)")
    ap.add_argument("--judge", type=Path, default=None, help="reuse a trained distilled judge (skips judge train)")
    ap.add_argument("--fresh", action="store_true", help="delete the work dir first (re-prepare every input)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=ARGS",
                    help="extra arguments for one benchmark, e.g. --extra 'train=--steps1 100 --steps2 50'")
    ap.add_argument("--results", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--doc", type=Path, default=DOC, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    results_dir = a.results or (RESULTS / "quick" if a.quick else RESULTS)
    if a.render:
        write_outputs(results_dir, {}, "render", None if a.quick else a.doc,
                      results_dir / "summary.md" if a.quick else None)
        print(f"[run_all] rendered {a.doc if not a.quick else results_dir / 'summary.md'} and "
              f"{results_dir / ALL_JSON} from {results_dir}/*.json")
        return 0

    a.work = a.work or Path(os.environ.get("BENCH_WORK") or "/tmp/strata-bench")
    if a.quick:  # its sliced lakehouse must never be reused by a full run
        a.work = a.work / "quick"
    a.data = a.data or _default_data()
    extra: dict[str, str] = {}
    for e in a.extra:
        k, _, v = e.partition("=")
        if k not in BY_NAME:
            ap.error(f"--extra {e!r}: unknown benchmark {k!r}")
        extra[k] = v
    a.extra = extra
    only = [x for x in a.only.split(",") if x]
    skip = {x for x in a.skip.split(",") if x}
    for x in [*only, *skip]:
        if x not in BY_NAME:
            ap.error(f"unknown benchmark {x!r} (known: {', '.join(BY_NAME)})")
    chosen = [b for b in BENCHES if (not only or b.name in only) and b.name not in skip]

    if a.fresh and a.work.exists() and not a.dry_run:
        shutil.rmtree(a.work)
    a.work.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    print(f"[run_all] {'quick' if a.quick else 'full'} run of {', '.join(b.name for b in chosen)}\n"
          f"[run_all] machine: {machine_line(info)}\n[run_all] data: {a.data}\n[run_all] work: {a.work}\n"
          f"[run_all] results: {results_dir}", flush=True)
    if not a.data.is_dir():
        print(f"[run_all] WARNING: data root {a.data} not found: every benchmark will be skipped", flush=True)
    r = Runner(a)
    st = r.steps()
    runs: dict[str, dict] = {}
    t0 = time.perf_counter()
    for b in chosen:
        runs[b.name] = r.bench(b, st, results_dir)
    if a.dry_run:
        return 0
    total = time.perf_counter() - t0
    write_outputs(results_dir, runs, "quick" if a.quick else "full", None if a.quick else a.doc,
                  results_dir / "summary.md" if a.quick else None,
                  {"prepare": r.records.get("prepare", {}), "work": str(a.work), "seconds": round(total, 1)})
    print(f"\n[run_all] done in {total:,.0f} s", flush=True)
    for name, rec in runs.items():
        print(f"[run_all]   {name:17s} {rec.get('status')}", flush=True)
    print(f"[run_all] wrote {results_dir / ALL_JSON}"
          + ("" if a.quick else f" and the generated blocks of {a.doc}"), flush=True)
    return 1 if any(k.startswith("bench-") for k in r.failed) else 0


if __name__ == "__main__":
    sys.exit(cli())
