"""Matplotlib figures for the notebooks (each returns a Figure) and ``save`` to write them as PNG.

The evaluation plots are the report's own (``strata.evaluate.report_html``), shown with ``show_png``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strata.judge.protocol import GRADE_NAMES

_GRADE_COLORS = {0: "#c44e52", 1: "#dd8452", 2: "#55a868"}
_SEG_COLORS = {"head": "#4c72b0", "torso": "#55a868", "tail": "#dd8452"}


def _plt():
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, out_dir: str | Path, name: str) -> Path:
    """Write ``fig`` to ``OUT_DIR/name.png`` and return the path (the figure stays open for display)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


def show_png(b64: str | None, out_dir: str | Path, name: str) -> Path | None:
    """Save a base64 PNG (the report's plots) to ``OUT_DIR/name.png``; display it when in IPython."""
    if not b64:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    path.write_bytes(base64.b64decode(b64))
    try:
        from IPython import get_ipython
        from IPython.display import Image, display

        if get_ipython() is not None:
            display(Image(filename=str(path)))
    except ImportError:  # pragma: no cover
        pass
    return path


def table_rows(counts: pd.DataFrame):
    """Horizontal bars of rows per table (log scale)."""
    plt = _plt()
    c = counts.sort_values("rows")
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * max(len(c), 3) + 0.8))
    ax.barh(c["table"], c["rows"].clip(lower=1), color="#4c72b0")
    ax.set_xscale("log")
    ax.set_xlabel("rows (log)")
    for y, v in enumerate(c["rows"]):
        ax.text(max(v, 1), y, f" {v:,}", va="center", fontsize=8)
    ax.set_title("Rows per table")
    fig.tight_layout()
    return fig


def grade_bars(grades: pd.DataFrame):
    """Stacked bars of labelled pairs by grade per source/split (``tour.label_grades``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    x = [f"{s}\n{sp}" for s, sp in zip(grades["source"], grades["split"])]
    bottom = np.zeros(len(grades))
    for g in (0, 1, 2):
        v = grades[f"grade_{g}"].to_numpy(dtype=float)
        ax.bar(x, v, bottom=bottom, color=_GRADE_COLORS[g], label=f"{g} {GRADE_NAMES[g]}")
        bottom += v
    ax.set_ylabel("labelled pairs")
    ax.set_title("Human grades per source and split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def segment_plot(segments: pd.DataFrame):
    """Per source: share of searches and zero-click rate by head / torso / tail (``tour.segment_summary``)."""
    plt = _plt()
    sources = list(dict.fromkeys(segments["source"]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    width = 0.8 / max(len(sources), 1)
    for ax, col, title in ((axes[0], "search_share", "share of searches"),
                           (axes[1], "zero_click_rate", "zero-click rate (search-weighted)")):
        for i, src in enumerate(sources):
            s = segments[segments["source"] == src]
            xs = np.arange(len(s)) + i * width
            ax.bar(xs, s[col].fillna(0).to_numpy(dtype=float), width, label=src,
                   color=[_SEG_COLORS.get(seg, "#888") for seg in s["segment"]], alpha=1 - 0.3 * i,
                   edgecolor="black", linewidth=0.3)
            ax.set_xticks(np.arange(len(s)) + width * (len(sources) - 1) / 2)
            ax.set_xticklabels([f"{seg}\n({q} q)" for seg, q in zip(s["segment"], s["queries"])], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if len(sources) > 1:
        axes[0].legend(fontsize=8)
    fig.suptitle("Query segments" + (f" ({sources[0]})" if len(sources) == 1 else ""), fontsize=11)
    fig.tight_layout()
    return fig


def zero_click_hist(query_stats: pd.DataFrame):
    """Distribution of per-query zero-click rate, one histogram per segment (weighted by searches)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    qs = query_stats[query_stats["zero_click_rate"].notna()]
    for seg in ("head", "torso", "tail"):
        s = qs[qs["segment"] == seg]
        if len(s):
            ax.hist(s["zero_click_rate"], bins=20, range=(0, 1), weights=s["searches"].fillna(0), alpha=0.5,
                    color=_SEG_COLORS[seg], label=f"{seg} ({len(s)} queries)")
    ax.set_xlabel("zero-click rate of the query")
    ax.set_ylabel("searches")
    ax.set_title("How often a search ends without a click")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def confusion_plot(report: dict, title: str = "Judge vs human"):
    """Confusion matrix heat map (row-normalised colour, counts written in the cells)."""
    plt = _plt()
    cm = np.asarray(report["judge"]["confusion"], dtype=float)
    norm = cm / np.where(cm.sum(1, keepdims=True) > 0, cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 3.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = [f"{g} {GRADE_NAMES[g]}" for g in range(3)]
    ax.set_xticks(range(3), names, fontsize=8)
    ax.set_yticks(range(3), names, fontsize=8)
    ax.set_xlabel("judge grade")
    ax.set_ylabel("human grade")
    for i in range(3):
        for j in range(3):
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_title(f"{title}\nacc {report['accuracy']:.3f}, kappa {report['kappa']:.3f} (n={report['n']})",
                 fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the human grade")
    fig.tight_layout()
    return fig


def expected_grade_plot(pairs: pd.DataFrame):
    """The judge's expected grade (p1 + 2 p2) per human grade: well separated boxes = a useful judge."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    exp = pairs["p1"].fillna(0) + 2 * pairs["p2"].fillna(0)
    data = [exp[pairs["human"] == g].to_numpy() for g in (0, 1, 2)]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks([1, 2, 3], [f"{g} {GRADE_NAMES[g]}\n(n={len(d)})" for g, d in zip((0, 1, 2), data)], fontsize=8)
    ax.set_ylim(0, 2)
    ax.set_xlabel("human grade")
    ax.set_ylabel("judge expected grade")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Judge expected grade by human grade")
    fig.tight_layout()
    return fig


def delta_hist(deltas: pd.DataFrame, a: str, b: str, metric: str):
    """Histogram of per-query ``b - a`` (``evaluation.query_deltas``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    d = deltas["diff"].to_numpy(dtype=float)
    ax.hist(d, bins=30, range=(-1, 1), color="#8172b3")
    ax.axvline(0, color="black", lw=1)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    ax.set_title(f"Per-query {metric}: {b} - {a}  ({wins} better, {losses} worse, {len(d) - wins - losses} tied)",
                 fontsize=9)
    ax.set_xlabel(f"{metric} difference")
    ax.set_ylabel("queries")
    fig.tight_layout()
    return fig
