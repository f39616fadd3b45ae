"""Calibration of a judge against held-out human grades: agreement metrics, JSON and markdown reports.

3-class accuracy, within-1 accuracy (an exact/irrelevant swap is the only miss), Cohen's kappa with
quadratic weights (the ordinal agreement measure), the confusion matrix, per-grade precision/recall, and
the same numbers for the majority-class baseline (always predict the most common human grade, taken from
the labels being scored unless a training prior is given), so a judge's accuracy is read against it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from strata.judge.protocol import GRADE_NAMES, GRADES


def quadratic_kappa(y_true: np.ndarray, y_pred: np.ndarray, k: int = 3) -> float:
    o = np.zeros((k, k))
    for t, p in zip(y_true, y_pred):
        o[t, p] += 1
    n = o.sum()
    if n == 0:
        return float("nan")
    w = np.array([[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)])
    e = np.outer(o.sum(1), o.sum(0)) / n
    den = (w * e).sum()
    return float(1.0 - (w * o).sum() / den) if den > 0 else 0.0


def agreement(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, Any]:
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    n = len(t)
    cm = np.zeros((3, 3), dtype=np.int64)
    for a, b in zip(t, p):
        cm[a, b] += 1
    per = {}
    for g in GRADES:
        tp = cm[g, g]
        per[GRADE_NAMES[g]] = {
            "grade": g,
            "support": int(cm[g].sum()),
            "predicted": int(cm[:, g].sum()),
            "precision": float(tp / cm[:, g].sum()) if cm[:, g].sum() else 0.0,
            "recall": float(tp / cm[g].sum()) if cm[g].sum() else 0.0,
        }
    return {
        "n": int(n),
        "accuracy": float((t == p).mean()) if n else float("nan"),
        "within1": float((np.abs(t - p) <= 1).mean()) if n else float("nan"),
        "kappa": quadratic_kappa(t, p),
        "confusion": cm.tolist(),  # rows: human grade 0..2, columns: judge grade 0..2
        "per_grade": per,
    }


def calibration_report(y_true: Sequence[int], y_pred: Sequence[int], probs: np.ndarray | None = None,
                       majority_grade: int | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    t = np.asarray(y_true, dtype=np.int64)
    judge = agreement(t, y_pred)
    if majority_grade is None:
        majority_grade = int(np.bincount(t, minlength=3).argmax()) if len(t) else 0
    base = agreement(t, np.full(len(t), majority_grade))
    rep: dict[str, Any] = {
        "n": judge["n"],
        "accuracy": judge["accuracy"],
        "within1": judge["within1"],
        "kappa": judge["kappa"],
        "majority_grade": int(majority_grade),
        "majority_accuracy": base["accuracy"],
        "majority_within1": base["within1"],
        "accuracy_gain_points": 100.0 * (judge["accuracy"] - base["accuracy"]),
        "judge": judge,
        "majority": base,
    }
    if probs is not None and len(t):
        pr = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
        rep["log_loss"] = float(-np.log(pr[np.arange(len(t)), t]).mean())
        rep["expected_grade_mae"] = float(np.abs(pr @ np.arange(3) - t).mean())
    if meta:
        rep["meta"] = meta
    return rep


def to_markdown(rep: dict[str, Any], title: str = "Judge calibration") -> str:
    j, b = rep["judge"], rep["majority"]
    lines = [f"# {title}", ""]
    for k, v in (rep.get("meta") or {}).items():
        lines.append(f"- {k}: `{v}`")
    lines += [
        f"- pairs: {rep['n']}", "",
        "| metric | judge | majority baseline (grade %d) |" % rep["majority_grade"],
        "|---|---|---|",
        f"| 3-class accuracy | {j['accuracy']:.4f} | {b['accuracy']:.4f} |",
        f"| within-1 accuracy | {j['within1']:.4f} | {b['within1']:.4f} |",
        f"| Cohen's kappa (quadratic) | {j['kappa']:.4f} | {b['kappa']:.4f} |",
        "", "Confusion (rows = human grade, columns = judge grade):", "",
        "| human \\ judge | 0 | 1 | 2 |", "|---|---|---|---|",
    ]
    for g in GRADES:
        lines.append(f"| {g} ({GRADE_NAMES[g]}) | " + " | ".join(str(x) for x in j["confusion"][g]) + " |")
    lines += ["", "| grade | support | precision | recall |", "|---|---|---|---|"]
    for name, d in j["per_grade"].items():
        lines.append(f"| {d['grade']} {name} | {d['support']} | {d['precision']:.4f} | {d['recall']:.4f} |")
    return "\n".join(lines) + "\n"


def write_report(rep: dict[str, Any], out_json: str | Path, title: str = "Judge calibration") -> Path:
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rep, indent=2))
    md = out.with_suffix(".md")
    md.write_text(to_markdown(rep, title))
    return md


def beir_pairs(folder: str | Path, split: str | None = None, limit: int | None = None, seed: int = 0):
    """Graded qrels of a BEIR folder as (query, product text, human grade) triples (grades clipped to 0..2)."""
    from strata.sources.beir import read_beir

    ds = read_beir(folder, split)
    rows = []
    for qid, rel in ds.qrels.items():
        for did, g in rel.items():
            rows.append((ds.queries[qid], ds.doc_text(did), int(min(max(g, 0), 2))))
    if limit and len(rows) > limit:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(rows), size=limit, replace=False))
        rows = [rows[i] for i in keep]
    return ds, rows
