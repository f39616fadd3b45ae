"""A training run folder (``strata train --out OUT``) for a notebook: the per-step curves MLflow recorded,
the stages side by side, and (when ``bench/bench_train.py`` has been run) the quality comparison.

Layout read (``strata.train.runner.train``): ``OUT/train.json`` (stages: steps, examples/s, final loss),
``OUT/stage1/model``, ``OUT/stage2/model``, ``OUT/model``, and the MLflow file store ``OUT/mlruns`` (or the
configured ``mlflow_uri``) with one run per stage (``stage1``, ``stage2``) in the ``strata-train``
experiment, metrics ``loss`` (EMA), ``lr``, ``examples_per_s`` per logged step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strata.explore.plots import _plt

CURVE_METRICS = ("loss", "lr", "examples_per_s")
QUALITY_METRICS = ("ndcg@10", "recall@100", "mrr@10")
# bench_train.py's retriever keys -> display names, in display order.
BENCH_NAMES = {"baseline": "off-the-shelf", "bm25": "BM25", "mnrl": "MNRL", "stage1": "Stage 1",
               "stage1+2": "Stage 1+2"}
_STAGE_COLORS = {"stage1": "#4c72b0", "stage2": "#dd8452"}


def find_train_dir(train_dir: str | Path | None = None, roots: tuple[str, ...] = ("runs", "../runs")) -> Path:
    """``train_dir`` when given (must hold ``train.json``), else the newest ``train.json`` folder up to two
    levels under ``roots`` (relative to the repo root or ``notebooks/``)."""
    if train_dir:
        p = Path(train_dir).expanduser()
        if not (p / "train.json").is_file():
            raise FileNotFoundError(f"{p}: no train.json (is this a finished `strata train --out` folder?)")
        return p.resolve()
    found = [m.parent for r in roots if Path(r).is_dir() for pat in ("*/train.json", "*/*/train.json")
             for m in Path(r).glob(pat)]
    if not found:
        raise FileNotFoundError(f"no train.json under {', '.join(roots)}; pass train_dir (`strata train --out`)")
    return max(found, key=lambda p: (p / "train.json").stat().st_mtime).resolve()


def load_summary(train_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(train_dir) / "train.json").read_text())


def stage_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row per stage of ``train.json``: steps, query groups, seconds, examples/s, final loss, resume."""
    cols = ["stage", "steps", "groups", "seconds", "examples_per_s", "final_loss", "resumed_from_step", "model_dir"]
    rows = [{c: s.get(c) for c in cols} for s in summary.get("stages", [])]
    df = pd.DataFrame(rows, columns=cols)
    df["stage"] = [f"stage{s}" for s in df["stage"]]
    return df


def tracking_uri(train_dir: str | Path, summary: Mapping[str, Any] | None = None) -> str:
    """The run's MLflow tracking URI: the configured one, else the file store ``OUT/mlruns``."""
    uri = ((summary or {}).get("config") or {}).get("mlflow_uri")
    return uri or (Path(train_dir).resolve() / "mlruns").as_uri()


def metric_history(uri: str, experiment: str = "strata-train", metrics: tuple[str, ...] = CURVE_METRICS,
                   runs: tuple[str, ...] = ("stage1", "stage2")) -> pd.DataFrame:
    """Long frame ``stage, run_id, metric, step, value`` of each stage's newest MLflow run (by start time):
    a re-trained stage starts a new run under the same name, a resumed one continues its run."""
    cols = ["stage", "run_id", "metric", "step", "value"]
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame(columns=cols)
    newest: dict[str, Any] = {}
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        name = r.info.run_name
        if name in runs and (name not in newest or r.info.start_time > newest[name].info.start_time):
            newest[name] = r
    rows = []
    for name in runs:
        if name not in newest:
            continue
        rid = newest[name].info.run_id
        for m in metrics:
            for h in client.get_metric_history(rid, m):
                rows.append({"stage": name, "run_id": rid, "metric": m, "step": int(h.step), "value": float(h.value)})
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["stage", "metric", "step"]).reset_index(drop=True)


def global_steps(history: pd.DataFrame, stages: pd.DataFrame | None = None) -> pd.DataFrame:
    """``history`` with ``global_step``: stage 2's steps continue after stage 1's (its step count from
    ``stage_frame`` when given, else its last logged step)."""
    h = history.copy()
    offset, off = {}, 0
    for name in sorted(h["stage"].unique()):
        offset[name] = off
        n = None
        if stages is not None and name in set(stages["stage"]):
            n = stages.loc[stages["stage"] == name, "steps"].iloc[0]
        off += int(n) if n is not None and pd.notna(n) else int(h.loc[h["stage"] == name, "step"].max())
    h["global_step"] = h["step"] + h["stage"].map(offset)
    return h


def find_bench(bench_json: str | Path | None = None,
               candidates: tuple[str, ...] = ("bench/results/train.json", "../bench/results/train.json")
               ) -> Path | None:
    """The benchmark file: ``bench_json`` when given (it must exist), else the first of ``candidates`` that
    exists, else None (no benchmark run yet)."""
    if bench_json:
        p = Path(bench_json).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"bench_json {p} does not exist (bench/bench_train.py writes it)")
        return p.resolve()
    return next((Path(c).resolve() for c in candidates if Path(c).is_file()), None)


def bench_frame(bench: Mapping[str, Any]) -> pd.DataFrame:
    """Retrievers of ``bench_train.py``'s ``quality`` in display order (off-the-shelf, BM25, MNRL, Stage 1,
    Stage 1+2, then any other) with the three metrics and nDCG@10 relative to the baseline / BM25 / MNRL."""
    q = bench.get("quality", {})
    rel = bench.get("relative_ndcg10", {})
    keys = [k for k in BENCH_NAMES if k in q] + [k for k in q if k not in BENCH_NAMES]
    cols = ["key", "retriever", *QUALITY_METRICS, "vs_baseline", "vs_bm25", "vs_mnrl"]
    rows = [{"key": k, "retriever": BENCH_NAMES.get(k, k), **{m: q[k].get(m) for m in QUALITY_METRICS},
             **{c: rel.get(k, {}).get(c) for c in ("vs_baseline", "vs_bm25", "vs_mnrl")}} for k in keys]
    return pd.DataFrame(rows, columns=cols)


def bench_stage_frame(bench: Mapping[str, Any]) -> pd.DataFrame:
    """Training cost in the benchmark: each Strata stage and the MNRL fine-tune (steps, examples/s, s)."""
    rows = [{"run": f"stage{s['stage']}", "steps": s.get("steps"), "examples_per_s": s.get("examples_per_s"),
             "seconds": s.get("seconds"), "final_loss": s.get("final_loss")}
            for s in (bench.get("strata") or {}).get("stages", [])]
    m = bench.get("mnrl")
    if m:
        rows.append({"run": "mnrl", "steps": m.get("steps"), "examples_per_s": m.get("examples_per_s"),
                     "seconds": m.get("seconds"), "final_loss": m.get("final_loss")})
    return pd.DataFrame(rows, columns=["run", "steps", "examples_per_s", "seconds", "final_loss"])


# ---------------------------------------------------------------- plots


def curves_plot(history: pd.DataFrame, stages: pd.DataFrame | None = None):
    """Loss, learning rate and examples/s against the global step, one colour per stage."""
    plt = _plt()
    h = global_steps(history, stages) if not history.empty else history.assign(global_step=[])
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, m in zip(axes, CURVE_METRICS):
        for name in sorted(h["stage"].unique()):
            s = h[(h["stage"] == name) & (h["metric"] == m)]
            if len(s):
                ax.plot(s["global_step"], s["value"], marker="o" if len(s) < 30 else None, ms=3,
                        color=_STAGE_COLORS.get(name, "#888"), label=name)
        ax.set_title(m, fontsize=10)
        ax.set_xlabel("step (stage 2 after stage 1)")
        ax.grid(alpha=0.3)
    if len(h):
        axes[0].legend(fontsize=8)
    fig.suptitle("Training curves (MLflow)", fontsize=11)
    fig.tight_layout()
    return fig


def stage_plot(stages: pd.DataFrame):
    """Per stage: steps, examples/s and final loss (from ``train.json``)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
    colors = [_STAGE_COLORS.get(s, "#888") for s in stages["stage"]]
    for ax, col in zip(axes, ("steps", "examples_per_s", "final_loss")):
        v = pd.to_numeric(stages[col], errors="coerce").fillna(0).to_numpy(dtype=float)
        ax.bar(stages["stage"], v, color=colors)
        for x, val in enumerate(v):
            ax.text(x, val, f"{val:,.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_title(col, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Stages of this run", fontsize=11)
    fig.tight_layout()
    return fig


def bench_plot(frame: pd.DataFrame):
    """Grouped bars: nDCG@10, Recall@100, MRR@10 per retriever (off-the-shelf, BM25, MNRL, Stage 1, 1+2)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    x = np.arange(len(frame))
    width = 0.8 / len(QUALITY_METRICS)
    for i, (m, c) in enumerate(zip(QUALITY_METRICS, ("#4c72b0", "#55a868", "#c44e52"))):
        v = pd.to_numeric(frame[m], errors="coerce").fillna(0).to_numpy(dtype=float)
        ax.bar(x + (i - 1) * width, v, width, label=m, color=c)
        for xi, val in zip(x, v):
            ax.text(xi + (i - 1) * width, val, f"{val:.3f}", ha="center", va="bottom", fontsize=6.5)
    ax.set_xticks(x, frame["retriever"], fontsize=9)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    ax.set_title("Dev-split quality: off-the-shelf vs BM25 vs MNRL vs Strata stages", fontsize=10)
    fig.tight_layout()
    return fig
