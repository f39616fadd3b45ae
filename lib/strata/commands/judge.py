"""``strata judge``: train the distilled judge, calibrate a judge on human labels, score candidates, audit.

Wired into the CLI by ``register(app)`` (adds the ``judge`` sub-app).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
judge_app = typer.Typer(help="Relevance judge: train, calibrate, score candidates, engagement audit.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(judge_app, name="judge")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


@judge_app.command("train")
def train(
    lakehouse: Path = typer.Option(..., "--lakehouse", help="table root holding labels + products"),
    out: Path = typer.Option(..., "--out", help="folder for the trained judge"),
    source: Optional[str] = typer.Option(None, "--source", help="only this labels source"),
    name: str = typer.Option("distilled-minilm", "--name", help="judge name (id = name@weights-hash)"),
    base: str = typer.Option("baseline", "--base", help="base model ('baseline' = packaged MiniLM)"),
    epochs: float = typer.Option(1.0, "--epochs"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(6e-5, "--lr"),
    max_length: int = typer.Option(64, "--max-length"),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", help="train on a random subset of N pairs"),
    sample_labels: Optional[int] = typer.Option(None, "--sample-labels",
                                                help="load about N labels (whole queries, stable hash) instead "
                                                "of all: bounds memory on a large labels table"),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", help="wall-time cap for training"),
    eval_split: Optional[str] = typer.Option("dev", "--eval-split", help="score this split after training "
                                             "('' to skip)"),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="score at most N eval pairs "
                                             "(a random sample by query)"),
    threads: Optional[int] = typer.Option(None, "--threads"),
    layers: Optional[int] = typer.Option(None, "--layers", help="keep only the first N MiniLM layers"),
    stack_fraction: float = typer.Option(0.25, "--stack-fraction", help="share of training queries held out "
                                         "from the cross-encoder to fit the grade head on (0 = no head)"),
) -> None:
    """Fine-tune the distilled judge on the labels table's train split; report agreement on the dev split."""
    import numpy as np

    from strata.judge.calibrate import calibration_report, write_report
    from strata.judge.distilled import META_FILE, DistilledJudge, catalog_texts, load_pairs, train_judge
    from strata.tables import Lakehouse

    _logging()
    lh = Lakehouse(lakehouse)
    if not lh.exists("labels") or not lh.exists("products"):
        console.print(f"[red]error:[/red] {escape(str(lakehouse))} needs labels and products tables (run strata ingest)")
        raise typer.Exit(2)
    pairs = load_pairs(lh, source, sample=sample_labels)
    tr = pairs[pairs["split"] == "train"]
    if tr.empty:
        console.print("[red]error:[/red] no train-split labels with product text")
        raise typer.Exit(2)
    res = train_judge(
        tr, out, catalog_texts(lh), stack_fraction=stack_fraction, name=name, base=base, epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length,
        max_seconds=max_seconds, max_pairs=max_pairs, threads=threads, layers=layers,
        data_version={"lakehouse": str(lh.root), "labels": lh.version("labels"),
                      "products": lh.version("products"), "source": source,
                      "sample_labels": sample_labels},
    )
    summary = {"judge_id": res.judge_id, "out": str(res.folder), "train_pairs_seen": res.seen_pairs,
               "train_seconds": round(res.seconds, 1)}
    if eval_split:
        ev = pairs[pairs["split"] == eval_split]
        if eval_limit and len(ev) > eval_limit:
            # Sample whole queries (stable hash order) so the subset keeps the split's per-query structure.
            qs = sorted(ev["query_norm"].unique(), key=lambda q: hash_key(q))
            keep, n = [], 0
            counts = ev["query_norm"].value_counts()
            for q in qs:
                if n >= eval_limit:
                    break
                keep.append(q)
                n += int(counts[q])
            ev = ev[ev["query_norm"].isin(set(keep))]
        judge = DistilledJudge(out, threads=threads)
        t0 = time.perf_counter()
        probs = judge.predict_proba(list(ev["query"]), list(ev["product_text"]))
        secs = time.perf_counter() - t0
        majority = int(np.bincount(tr["grade"].to_numpy(), minlength=3).argmax())
        rep = calibration_report(
            ev["grade"].to_numpy(), probs.argmax(1), probs, majority_grade=majority,
            meta={"judge_id": judge.judge_id, "eval": f"labels split={eval_split}", "lakehouse": str(lh.root),
                  "train_pairs_seen": res.seen_pairs, "train_seconds": round(res.seconds, 1),
                  "eval_seconds": round(secs, 1)})
        md = write_report(rep, Path(out) / f"calibration_{eval_split}.json", f"Distilled judge on {eval_split}")
        meta_path = Path(out) / META_FILE
        meta = json.loads(meta_path.read_text())
        meta["metrics"][eval_split] = {k: rep[k] for k in ("n", "accuracy", "within1", "kappa",
                                                           "majority_accuracy", "accuracy_gain_points")}
        meta_path.write_text(json.dumps(meta, indent=2))
        summary[eval_split] = meta["metrics"][eval_split]
        summary["report"] = str(md)
    print(json.dumps(summary, indent=2))


def hash_key(q: str) -> str:
    import hashlib

    return hashlib.sha1(q.encode("utf-8")).hexdigest()


def _judge_config(judge: Optional[Path], backend: str, model: Optional[str], **kw):
    from strata.judge.backends import JudgeConfig

    if backend == "distilled":
        if judge is None:
            console.print("[red]error:[/red] --judge JUDGE_DIR is required for the distilled backend")
            raise typer.Exit(2)
        if not (judge / "judge.json").is_file():
            console.print(f"[red]error:[/red] {escape(str(judge))} is not a trained judge (no judge.json)")
            raise typer.Exit(2)
        model = str(judge.expanduser().resolve())
    return JudgeConfig(backend=backend, model=model or "", **kw)


@judge_app.command("calibrate")
def calibrate(
    judge: Optional[Path] = typer.Option(None, "--judge", help="trained distilled judge dir"),
    dataset: Path = typer.Option(..., "--dataset", help="BEIR folder whose graded qrels are the human labels"),
    out: Path = typer.Option(..., "--out", help="calibration JSON (a .md twin is written next to it)"),
    split: Optional[str] = typer.Option(None, "--split", help="qrels split (default test, dev, ...)"),
    backend: str = typer.Option("distilled", "--backend", help="distilled | transformers"),
    model: Optional[str] = typer.Option(None, "--model", help="transformers: 'smollm2' or a model dir"),
    limit: Optional[int] = typer.Option(None, "--limit", help="score a random sample of N judged pairs"),
    batch_size: int = typer.Option(64, "--batch-size"),
) -> None:
    """Score a BEIR folder's graded qrels as held-out human labels: accuracy, within-1, kappa vs majority."""
    from strata.judge.backends import load_judge
    from strata.judge.calibrate import beir_pairs, calibration_report, write_report
    from strata.judge.protocol import JudgeInput
    from strata.sources.beir import BeirFormatError

    _logging()
    cfg = _judge_config(judge, backend, model, batch_size=batch_size)
    try:
        ds, rows = beir_pairs(dataset, split, limit)
    except (BeirFormatError, FileNotFoundError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    if not rows:
        console.print(f"[red]error:[/red] {escape(str(dataset))}: no judged pairs in qrels")
        raise typer.Exit(2)
    j = load_judge(cfg)
    t0 = time.perf_counter()
    outs = []
    for s in range(0, len(rows), 512):
        outs += j.judge([JudgeInput(q, d) for q, d, _ in rows[s : s + 512]])
    secs = time.perf_counter() - t0
    ok = [i for i, o in enumerate(outs) if o.scored]
    import numpy as np

    y = np.array([rows[i][2] for i in ok])
    pred = np.array([outs[i].grade for i in ok])
    probs = np.array([outs[i].probs for i in ok]).reshape(len(ok), 3)
    rep = calibration_report(y, pred, probs, meta={
        "judge_id": j.judge_id, "dataset": str(dataset), "split": ds.split, "pairs_in_qrels_sample": len(rows),
        "unscored_rows": len(rows) - len(ok), "seconds": round(secs, 1)})
    md = write_report(rep, out, f"Judge calibration: {j.judge_id} on {ds.name}/{ds.split}")
    print(json.dumps({k: rep[k] for k in ("n", "accuracy", "within1", "kappa", "majority_accuracy",
                                          "accuracy_gain_points")} | {"json": str(out), "markdown": str(md)},
                     indent=2))


@judge_app.command("score")
def score(
    lakehouse: Path = typer.Option(..., "--lakehouse", help="table root; judgments are written here"),
    candidates: str = typer.Option(..., "--candidates", help="a Delta/parquet folder, or a table name in "
                                   "the lakehouse (labels = re-judge the human-labelled pairs)"),
    judge: Optional[Path] = typer.Option(None, "--judge", help="trained distilled judge dir"),
    backend: str = typer.Option("distilled", "--backend", help="distilled | transformers | openai"),
    model: Optional[str] = typer.Option(None, "--model"),
    batch_size: int = typer.Option(64, "--batch-size"),
    chunk_rows: int = typer.Option(2048, "--chunk-rows", help="rows between MERGEs into judgments"),
    actors: int = typer.Option(1, "--actors"),
    actor_cpus: float = typer.Option(0.5, "--actor-cpus"),
    limit: Optional[int] = typer.Option(None, "--limit",
                                        help="judge only the first N candidates (by query_norm, product_id)"),
    no_ray: bool = typer.Option(False, "--no-ray", help="score in this process (no Ray Data)"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="openai: endpoint base URL"),
    run_id: Optional[str] = typer.Option(None, "--run-id"),
) -> None:
    """Judge every candidate (query, product) not yet judged by this judge; resumable, MERGEs per chunk."""
    from strata.config import EngineConfig
    from strata.engines import Engines
    from strata.judge.job import read_candidates, run_judging
    from strata.tables import TABLES, Lakehouse

    _logging()
    cfg = _judge_config(judge, backend, model, batch_size=batch_size, chunk_rows=chunk_rows, actors=actors,
                        actor_cpus=actor_cpus, base_url=base_url)
    lh = Lakehouse(lakehouse)
    # A table or folder goes to the job as a path (Spark stages it; nothing comes through this process);
    # the human-labelled pairs are built here, as a frame.
    cands: object = candidates
    if candidates in TABLES:
        cands = read_candidates(_labels_candidates(lh)) if candidates == "labels" else lh.path(candidates)
    elif not Path(candidates).exists():
        console.print(f"[red]error:[/red] --candidates {escape(str(candidates))}: no such folder or table")
        raise typer.Exit(2)
    else:
        cands = Path(candidates)
    rid = run_id or f"judge-{time.strftime('%Y%m%d-%H%M%S')}"
    with Engines(EngineConfig(ray_num_cpus=os.cpu_count())) as eng:
        summary = run_judging(eng, lh, cands, cfg, rid, use_ray=not no_ray, limit=limit)
    summary["judgments_version"] = lh.version("judgments")
    print(json.dumps(summary, indent=2))


def _labels_candidates(lh):
    from strata.judge.distilled import load_pairs

    return load_pairs(lh)[["source", "query", "query_norm", "product_id", "product_text"]]


@judge_app.command("audit")
def audit(
    lakehouse: Path = typer.Option(..., "--lakehouse"),
    judge_id: Optional[str] = typer.Option(None, "--judge-id", help="audit one judge's judgments (default all)"),
    min_clicks: int = typer.Option(3, "--min-clicks"),
    min_impressions: int = typer.Option(20, "--min-impressions"),
) -> None:
    """Flag judgments that strongly disagree with engagement into the judge_audit table."""
    from strata.config import EngineConfig
    from strata.engines import Engines
    from strata.judge.audit import AuditRules, run_audit
    from strata.tables import Lakehouse

    _logging()
    lh = Lakehouse(lakehouse)
    rid = f"audit-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        with Engines(EngineConfig()) as eng:
            res = run_audit(eng, lh, judge_id, AuditRules(min_clicks, min_impressions), rid)
    except FileNotFoundError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    print(json.dumps(res, indent=2))
