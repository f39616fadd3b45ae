"""What ``strata judge train | calibrate | score`` do, as library functions: each reads its inputs, runs one
job and returns the summary the command prints, so a notebook or another stage can run the same thing.

Inputs that hold nothing to work on raise ``JudgeDataError`` (a usage error the CLI reports in one line);
anything else is a bug and propagates.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from strata.judge.config import JudgeConfig, JudgeTrainConfig
from strata.text import stable_hash

EVAL_KEYS = ("n", "accuracy", "within1", "kappa", "majority_accuracy", "accuracy_gain_points")


class JudgeDataError(ValueError):
    """The lakehouse, dataset or candidates named hold nothing to train on, calibrate on or judge."""


def hash_key(q: str) -> str:
    """A stable order of queries (sha1 of the text): the same eval sample in every run and every process."""
    return f"{stable_hash(q, nbytes=20):040x}"


def eval_sample(ev: "Any", limit: int | None) -> "Any":
    """At most about ``limit`` pairs of ``ev``, as whole queries taken in ``hash_key`` order, so the subset
    keeps the split's per-query structure."""
    if not limit or len(ev) <= limit:
        return ev
    qs = sorted(ev["query_norm"].unique(), key=hash_key)
    keep, n = [], 0
    counts = ev["query_norm"].value_counts()
    for q in qs:
        if n >= limit:
            break
        keep.append(q)
        n += int(counts[q])
    return ev[ev["query_norm"].isin(set(keep))]


def train_from_lakehouse(lakehouse: Any, out: str | Path, cfg: JudgeTrainConfig, *, source: str | None = None,
                         sample_labels: int | None = None, eval_split: str | None = None,
                         eval_limit: int | None = None) -> dict[str, Any]:
    """Train the distilled judge on the lakehouse's train-split labels; with ``eval_split``, score that split,
    write ``calibration_<split>.json``/``.md`` next to the judge and record the agreement in its judge.json.

    ``source`` keeps one labels source; ``sample_labels`` loads about that many labels (whole queries), which
    bounds memory on a large labels table. Returns the summary ``strata judge train`` prints.
    """
    from strata.judge.pairs import catalog_texts, load_pairs
    from strata.judge.trainer import train_judge

    pairs = load_pairs(lakehouse, source, sample=sample_labels)
    tr = pairs[pairs["split"] == "train"]
    if tr.empty:
        raise JudgeDataError("no train-split labels with product text")
    res = train_judge(tr, out, catalog_texts(lakehouse), cfg,
                      data_version={"lakehouse": str(lakehouse.root), "labels": lakehouse.version("labels"),
                                    "products": lakehouse.version("products"), "source": source,
                                    "sample_labels": sample_labels})
    summary: dict[str, Any] = {"judge_id": res.judge_id, "out": str(res.folder), "train_pairs_seen": res.seen_pairs,
                               "train_seconds": round(res.seconds, 1)}
    if eval_split:
        ev = eval_sample(pairs[pairs["split"] == eval_split], eval_limit)
        metrics, md = _evaluate_on_split(out, ev, tr, eval_split, res, lakehouse, cfg.threads)
        summary[eval_split] = metrics
        summary["report"] = str(md)
    return summary


def _evaluate_on_split(out: str | Path, ev: "Any", tr: "Any", split: str, res: Any, lakehouse: Any,
                       threads: int | None) -> tuple[dict[str, Any], Path]:
    """Score ``ev`` with the judge in ``out`` against the majority grade of ``tr``; write the calibration
    report and the headline metrics into judge.json."""
    import numpy as np

    from strata.judge.calibrate import calibration_report, write_report
    from strata.judge.model import META_FILE, DistilledJudge

    judge = DistilledJudge(out, threads=threads)
    t0 = time.perf_counter()
    probs = judge.predict_proba(list(ev["query"]), list(ev["product_text"]))
    secs = time.perf_counter() - t0
    majority = int(np.bincount(tr["grade"].to_numpy(), minlength=3).argmax())
    rep = calibration_report(
        ev["grade"].to_numpy(), probs.argmax(1), probs, majority_grade=majority,
        meta={"judge_id": judge.judge_id, "eval": f"labels split={split}", "lakehouse": str(lakehouse.root),
              "train_pairs_seen": res.seen_pairs, "train_seconds": round(res.seconds, 1),
              "eval_seconds": round(secs, 1)})
    md = write_report(rep, Path(out) / f"calibration_{split}.json", f"Distilled judge on {split}")
    meta_path = Path(out) / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["metrics"][split] = {k: rep[k] for k in EVAL_KEYS}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta["metrics"][split], md


def calibrate_beir(cfg: JudgeConfig, dataset: str | Path, out: str | Path, split: str | None = None,
                   limit: int | None = None) -> dict[str, Any]:
    """Score a BEIR folder's graded qrels as held-out human labels with the judge ``cfg`` builds; write the
    calibration JSON to ``out`` (and its markdown twin). Returns the headline metrics and both paths.

    Raises ``BeirFormatError``/``FileNotFoundError`` for an unreadable folder and ``JudgeDataError`` when its
    qrels judge no pair.
    """
    import numpy as np

    from strata.judge.backends import load_judge
    from strata.judge.calibrate import beir_pairs, calibration_report, write_report
    from strata.judge.protocol import JudgeInput

    ds, rows = beir_pairs(dataset, split, limit)
    if not rows:
        raise JudgeDataError(f"{dataset}: no judged pairs in qrels")
    j = load_judge(cfg)
    t0 = time.perf_counter()
    outs = []
    step = len(rows) if cfg.backend == "vllm" else 512  # vllm: each call is a Ray Data job and an engine start
    for s in range(0, len(rows), step):
        outs += j.judge([JudgeInput(q, d) for q, d, _ in rows[s : s + step]])
    secs = time.perf_counter() - t0
    ok = [i for i, o in enumerate(outs) if o.scored]
    y = np.array([rows[i][2] for i in ok])
    pred = np.array([outs[i].grade for i in ok])
    probs = np.array([outs[i].probs for i in ok]).reshape(len(ok), 3)
    rep = calibration_report(y, pred, probs, meta={
        "judge_id": j.judge_id, "dataset": str(dataset), "split": ds.split, "pairs_in_qrels_sample": len(rows),
        "unscored_rows": len(rows) - len(ok), "seconds": round(secs, 1)})
    md = write_report(rep, out, f"Judge calibration: {j.judge_id} on {ds.name}/{ds.split}")
    return {k: rep[k] for k in EVAL_KEYS} | {"json": str(out), "markdown": str(md)}


def resolve_candidates(lakehouse: Any, candidates: str) -> object:
    """What the judging job reads for ``candidates``: a table or folder as a path (Spark stages it; nothing
    comes through this process), the human-labelled pairs (``labels``) as a frame built here."""
    from strata.judge.job import read_candidates
    from strata.judge.pairs import labels_candidates
    from strata.storage import location
    from strata.tables import TABLES

    if candidates in TABLES:
        return read_candidates(labels_candidates(lakehouse)) if candidates == "labels" else lakehouse.path(candidates)
    where = location(candidates)
    if not where.exists():
        raise JudgeDataError(f"{candidates}: no such folder or table")
    return where


def score_candidates(engines: Any, lakehouse: Any, candidates: str, cfg: JudgeConfig, run_id: str, *,
                     use_ray: bool = True, limit: int | None = None) -> dict[str, Any]:
    """Judge every candidate (query, product) of ``candidates`` (a folder, or a table name in the lakehouse)
    not yet judged by this judge, MERGEing into ``judgments``; returns the job's summary and the judgments
    version it left. ``JudgeDataError`` before any engine starts when ``candidates`` names nothing;
    ``JudgeFailures`` (its summary with the version too) when the judge failed on too many pairs."""
    from strata.judge.job import JudgeFailures, run_judging

    cands = resolve_candidates(lakehouse, candidates)
    try:
        summary = run_judging(engines, lakehouse, cands, cfg, run_id, use_ray=use_ray, limit=limit)
    except JudgeFailures as e:
        e.summary["judgments_version"] = lakehouse.version("judgments")
        raise
    summary["judgments_version"] = lakehouse.version("judgments")
    return summary
