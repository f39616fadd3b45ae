"""report.html: one self-contained page (plots embedded as base64 PNGs) answering, on its first screen,
"did the model get better, and where?" - then the detail: metric table, slices, score separation,
category accuracy, judge calibration and training curves (each says "not run" when its input is absent).
Also the Markdown version of the same analysis for report.md.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SHORT = {"ndcg": "nDCG", "recall": "Recall", "precision": "P", "mrr": "MRR"}
_COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
_GRADE_COLORS = {"0": "#c44e52", "1": "#dd8452", "2": "#55a868"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _e(x: Any) -> str:
    return html.escape(str(x))


# ---------------------------------------------------------------- verdict


def verdict(analysis: Mapping[str, Any], against: Mapping[str, Any] | None = None) -> dict:
    """The headline: best retriever vs the reference (or vs the other run's best), with CI and p."""
    m = analysis.get("primary_metric", "ndcg@10")
    rets = analysis.get("retrievers", {})
    if not rets:
        return {"level": "neutral", "text": "No retriever was evaluated."}
    best = max(rets, key=lambda k: rets[k].get(m, -1))
    if against is not None:
        c = against
        label = f"{c.get('b_name')} vs {c.get('a_name')}"
    else:
        ref = analysis.get("reference")
        c = (analysis.get("comparisons", {}).get(best) or {}).get(m) if ref and best != ref else None
        label = f"{best} vs {ref}"
        if c is None:
            if not ref:
                tail = " No baseline in this run to compare with: use `strata report RUN --against OTHER`."
            else:
                tail = f" The reference ({ref}) is the best retriever: nothing in this run beats it."
            return {"level": "neutral", "text": f"Best {m}: {best} = {rets[best][m]:.4f}.{tail}", "best": best}
    if c is None:
        return {"level": "neutral", "text": "No comparison available."}
    sig = c["p_value"] < 0.05
    if c["diff"] > 0 and sig:
        level, word = "good", "significantly better"
    elif c["diff"] < 0 and c["ci_high"] < 0:
        level, word = "bad", "significantly worse"
    else:
        level, word = "neutral", "not significantly different"
    text = (
        f"{label}: {m} {c['mean_a']:.4f} &rarr; {c['mean_b']:.4f} "
        f"({c['diff']:+.4f}, {c['relative_lift']:+.1%}); 95% CI of the difference "
        f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], one-sided p = {c['p_value']:.4f} "
        f"over {c['num_queries']} queries &mdash; <b>{word}</b>."
    )
    if against is None:
        text += where_line(analysis, best, analysis.get("reference"))
    return {"level": level, "text": text, "best": best, "word": word}


def where_line(analysis: Mapping[str, Any], best: str, ref: str | None) -> str:
    """'Largest gain: ...; smallest: ...' over the slices (with >= 30 queries) of best vs ref."""
    m = analysis.get("primary_metric", "ndcg@10")
    by = analysis.get("slices", {}).get("by_retriever", {})
    if not ref or best not in by or ref not in by:
        return ""
    diffs = []
    for fam, slices in by[best].items():
        for s, row in slices.items():
            other = by[ref].get(fam, {}).get(s)
            if other and row["num_queries"] >= 30 and len(slices) > 1:
                diffs.append((row[m] - other[m], f"{fam}={s} (n={row['num_queries']})"))
    if len(diffs) < 2:
        return ""
    diffs.sort()
    return (f"<br>Where: largest gain on {diffs[-1][1]} {diffs[-1][0]:+.4f}; "
            f"smallest on {diffs[0][1]} {diffs[0][0]:+.4f}.")


# ---------------------------------------------------------------- plots


def slice_plot(analysis: Mapping[str, Any]) -> str | None:
    m = analysis.get("primary_metric", "ndcg@10")
    by_ret = analysis.get("slices", {}).get("by_retriever", {})
    if not by_ret:
        return None
    names = list(by_ret)
    families = [f for f in next(iter(by_ret.values())) if len(next(iter(by_ret.values()))[f]) > 1]
    if not families:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.4), squeeze=False)
    for ax, fam in zip(axes[0], families):
        slices = list(by_ret[names[0]][fam])
        width = 0.8 / len(names)
        for i, n in enumerate(names):
            vals = [by_ret[n][fam].get(s, {}).get(m, 0.0) for s in slices]
            ax.bar([x + i * width for x in range(len(slices))], vals, width, label=n,
                   color=_COLORS[i % len(_COLORS)])
        counts = [by_ret[names[0]][fam][s]["num_queries"] for s in slices]
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(slices))])
        ax.set_xticklabels([f"{s}\n(n={c})" for s, c in zip(slices, counts)], fontsize=8)
        ax.set_title(fam, fontsize=10)
        ax.set_ylabel(m)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def separation_plot(name: str, sep: Mapping[str, Any]) -> str | None:
    sims = sep.get("sims") or {}
    if not sims:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 3.2))
    for g in sorted(sims):
        ax.hist(sims[g], bins=40, range=(-0.2, 1.0), alpha=0.5, density=True,
                color=_GRADE_COLORS.get(g), label=f"grade {g} (n={len(sims[g])})")
    th = sep.get("threshold")
    if th:
        ax.axvline(th["threshold"], color="black", ls="--", lw=1,
                   label=f"threshold {th['threshold']:.3f} (P={th['precision']:.2f}, R={th['recall']:.2f})")
    aucs = ", ".join(f"{k}: {v:.3f}" for k, v in sep.get("auc", {}).items() if v is not None)
    ax.set_title(f"{name}: cosine similarity of labelled pairs\nAUC {aucs}", fontsize=9)
    ax.set_xlabel("cosine similarity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def training_plot(curves: Any) -> str | None:
    """``{"step": [...], "loss": [...], ...}`` or ``[{"step": .., "loss": ..}, ...]``."""
    if isinstance(curves, list):
        keys = sorted({k for row in curves if isinstance(row, dict) for k in row})
        curves = {k: [row.get(k) for row in curves] for k in keys}
    if not isinstance(curves, dict):
        return None
    x_key = next((k for k in ("step", "steps", "epoch", "global_step") if k in curves), None)
    series = {k: v for k, v in curves.items() if k != x_key and isinstance(v, list)
              and v and all(isinstance(t, (int, float)) or t is None for t in v)}
    if not series:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3), squeeze=False)
    for ax, (k, v) in zip(axes[0], series.items()):
        xs = curves[x_key] if x_key else list(range(len(v)))
        pts = [(x, y) for x, y in zip(xs, v) if y is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
        ax.set_title(k, fontsize=9)
        ax.set_xlabel(x_key or "index")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------- tables


def _metric_table(analysis: Mapping[str, Any]) -> str:
    order = analysis.get("metrics_order", [])
    rets = analysis.get("retrievers", {})
    comps = analysis.get("comparisons", {})
    ref = analysis.get("reference")
    best = {m: max(rets, key=lambda k: rets[k].get(m, -1)) for m in order} if rets else {}
    head = "".join(f"<th>{_e(m)}</th>" for m in order)
    rows = []
    for n, r in rets.items():
        cells = []
        for m in order:
            v = r.get(m)
            c = (comps.get(n) or {}).get(m)
            delta = ""
            if c:
                mark = "sig" if c["p_value"] < 0.05 and c["diff"] > 0 else (
                    "neg" if c["ci_high"] < 0 else "ns")
                delta = f'<br><span class="{mark}">{c["diff"]:+.4f}</span>'
            cls = ' class="best"' if best.get(m) == n else ""
            cells.append(f"<td{cls}>{v:.4f}{delta}</td>" if isinstance(v, float) else "<td>-</td>")
        tag = " (reference)" if n == ref else ""
        rows.append(f"<tr><th>{_e(n)}{tag}</th>{''.join(cells)}<td>{r.get('num_queries', '')}</td></tr>")
    return (
        f'<table><tr><th>retriever</th>{head}<th>queries</th></tr>{"".join(rows)}</table>'
        f'<p class="note">Bold = best per metric. Under each value: difference from {_e(ref)}; '
        '<span class="sig">green</span> = significantly better (paired bootstrap, one-sided p &lt; 0.05), '
        '<span class="neg">red</span> = significantly worse, grey = not significant.</p>'
    )


def _slice_table(analysis: Mapping[str, Any]) -> str:
    m = analysis.get("primary_metric", "ndcg@10")
    by_ret = analysis.get("slices", {}).get("by_retriever", {})
    if not by_ret:
        return ""
    names = list(by_ret)
    rows = []
    for fam, slices in by_ret[names[0]].items():
        for s, row in slices.items():
            vals = "".join(f"<td>{by_ret[n][fam].get(s, {}).get(m, float('nan')):.4f}</td>" for n in names)
            rows.append(f"<tr><td>{_e(fam)}</td><td>{_e(s)}</td><td>{row['num_queries']}</td>{vals}</tr>")
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    return f"<table><tr><th>family</th><th>slice</th><th>queries</th>{head}</tr>{''.join(rows)}</table>"


def _json_table(obj: Mapping[str, Any]) -> str:
    rows = []
    for k, v in obj.items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            rows.append(f"<tr><th>{_e(k)}</th><td>{_e(round(v, 4) if isinstance(v, float) else v)}</td></tr>")
        elif isinstance(v, dict) and all(not isinstance(x, (dict, list)) for x in v.values()):
            inner = ", ".join(f"{_e(a)}={_e(round(b, 4) if isinstance(b, float) else b)}" for a, b in v.items())
            rows.append(f"<tr><th>{_e(k)}</th><td>{inner}</td></tr>")
    return f"<table>{''.join(rows)}</table>" if rows else "<p>(no scalar fields)</p>"


_CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;max-width:1240px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
.sub{color:#666;font-size:13px;margin-bottom:12px}
.verdict{padding:12px 16px;border-radius:6px;font-size:15px;margin:10px 0 16px;line-height:1.45}
.good{background:#e3f4e6;border-left:6px solid #2e8b3a}.bad{background:#fbe4e4;border-left:6px solid #c0392b}
.neutral{background:#f1f1f1;border-left:6px solid #888}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f6f6f6}
tr th:first-child{text-align:left} td.best{font-weight:bold}
.sig{color:#2e8b3a;font-size:11px}.neg{color:#c0392b;font-size:11px}.ns{color:#999;font-size:11px}
.note{color:#666;font-size:12px} img{max-width:100%} .notrun{color:#999;font-style:italic}
"""


def render_html(
    analysis: Mapping[str, Any],
    *,
    run_id: str,
    judge_calibration: Any = None,
    training_curves: Any = None,
    against: Mapping[str, Any] | None = None,
) -> str:
    """``against``: ``{"run_id", "a_name", "b_name", "comparisons": {metric: Comparison dict}}``."""
    m = analysis.get("primary_metric", "ndcg@10")
    primary_cmp = (against or {}).get("comparisons", {}).get(m) if against else None
    if primary_cmp is not None:
        primary_cmp = {**primary_cmp, "a_name": against["a_name"], "b_name": against["b_name"]}
    v = verdict(analysis, primary_cmp)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Strata report {_e(run_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Strata run <code>{_e(run_id)}</code></h1>",
        f"<div class='sub'>Dev set <b>{_e(analysis.get('dataset'))}</b>: {analysis.get('num_queries')} "
        f"queries, full-corpus retrieval over {analysis.get('num_docs')} products; graded labels "
        "(2 exact, 1 partial, 0 irrelevant).</div>",
        f"<div class='verdict {v['level']}'>{v['text']}</div>",
        "<h2>Retrieval quality</h2>",
        _metric_table(analysis),
    ]
    if against:
        rows = "".join(
            f"<tr><th>{_e(mm)}</th><td>{c['mean_a']:.4f}</td><td>{c['mean_b']:.4f}</td>"
            f"<td>{c['diff']:+.4f}</td><td>[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]</td>"
            f"<td>{c['p_value']:.4f}</td></tr>"
            for mm, c in against.get("comparisons", {}).items()
        )
        parts += [
            f"<h2>Against run <code>{_e(against.get('run_id'))}</code></h2>",
            f"<p>{_e(against['b_name'])} (this run) vs {_e(against['a_name'])} (other run), paired over "
            "the queries both scored.</p>",
            f"<table><tr><th>metric</th><th>other</th><th>this</th><th>diff</th><th>95% CI</th>"
            f"<th>p (one-sided)</th></tr>{rows}</table>",
        ]
    sl = analysis.get("slices", {})
    parts.append("<h2>Where: per-slice " + _e(m) + "</h2>")
    sp = slice_plot(analysis)
    parts.append(_img(sp, "per-slice bars") if sp else "<p class='notrun'>no slices</p>")
    parts.append(
        f"<p class='note'>popularity from {_e(sl.get('popularity_source', '?'))}; length = whitespace "
        "tokens; misspelled = " + _e(sl.get("spelling_note", "")) + (
            " (e.g. " + _e("; ".join(f"{q!r}: {t}" for q, t in sl.get("misspelled_examples", [])[:3])) + ")"
            if sl.get("misspelled_examples") else "") + ".</p>"
    )
    parts.append(_slice_table(analysis))
    parts.append("<h2>Score separation (cosine similarity on labelled pairs)</h2>")
    seps = analysis.get("separation", {})
    if not seps:
        parts.append("<p class='notrun'>not run (no dense retriever, or separation disabled)</p>")
    for name, sep in seps.items():
        img = separation_plot(name, sep)
        th = sep.get("threshold") or {}
        aucs = ", ".join(f"{k} = {x:.3f}" for k, x in sep.get("auc", {}).items() if x is not None)
        parts.append(f"<h3>{_e(name)}</h3>" + (_img(img, f"separation {name}") if img else ""))
        if th:
            parts.append(
                f"<p>Pairwise AUC: {aucs}. Recommended &ldquo;relevant enough&rdquo; threshold "
                f"<b>{th['threshold']:.3f}</b> (max Youden J, grade &ge; 1 vs 0): precision {th['precision']:.3f}, "
                f"recall {th['recall']:.3f}.</p>"
            )
    cat = analysis.get("category_accuracy") or {}
    parts.append("<h2>Category accuracy@10</h2>")
    if cat:
        rows = "".join(
            f"<tr><th>{_e(n)}</th><td>{c.get('category_accuracy@10') or 0:.4f}</td><td>{c['num_queries']}</td></tr>"
            for n, c in cat.items()
        )
        parts.append(f"<table><tr><th>retriever</th><th>share in intended category</th><th>queries</th></tr>"
                     f"{rows}</table>")
    else:
        parts.append("<p class='notrun'>not run (the catalog has no categories for this dev set)</p>")
    parts.append("<h2>Judge calibration</h2>")
    if judge_calibration is not None:
        parts.append(_json_table(judge_calibration) if isinstance(judge_calibration, dict)
                     else f"<pre>{_e(json.dumps(judge_calibration)[:2000])}</pre>")
    else:
        parts.append("<p class='notrun'>not run (no judge_calibration.json in the run directory)</p>")
    parts.append("<h2>Training curves</h2>")
    tp = training_plot(training_curves) if training_curves is not None else None
    parts.append(_img(tp, "training curves") if tp else
                 "<p class='notrun'>not run (no training_curves.json in the run directory)</p>")
    parts.append(
        "<h2>Definitions</h2><p class='note'>nDCG@k: gain = grade, log2 discount, ideal = the judged "
        "products in grade order. Recall@k, precision@k, MRR@10 count grade &ge; 1 as relevant. Every "
        "judged query is averaged (all-irrelevant ones score 0). Significance: paired bootstrap over "
        "queries, 10,000 seeded resamples, percentile 95% CI, one-sided p = P(mean difference &le; 0). "
        "hybrid = reciprocal-rank fusion (k=60) of the bm25 and baseline runs.</p></body></html>"
    )
    return "\n".join(parts)


def analysis_markdown(analysis: Mapping[str, Any], against: Mapping[str, Any] | None = None) -> list[str]:
    m = analysis.get("primary_metric", "ndcg@10")
    primary_cmp = None
    if against and m in against.get("comparisons", {}):
        primary_cmp = {**against["comparisons"][m], "a_name": against["a_name"], "b_name": against["b_name"]}
    v = verdict(analysis, primary_cmp)
    text = v["text"].replace("<br>", " ").replace("&rarr;", "->").replace("&mdash;", "-").replace("<b>", "**").replace("</b>", "**")
    order = analysis.get("metrics_order", [])
    ref = analysis.get("reference")
    lines = ["## Verdict", "", text, "", "## All metrics", "",
             "| retriever | " + " | ".join(order) + " |", "|---|" + "---:|" * len(order)]
    for n, r in analysis.get("retrievers", {}).items():
        cells = []
        for mm in order:
            c = (analysis.get("comparisons", {}).get(n) or {}).get(mm)
            star = "*" if c and c["p_value"] < 0.05 and c["diff"] > 0 else ""
            cells.append(f"{r.get(mm, 0):.4f}{star}")
        lines.append(f"| {n}{' (ref)' if n == ref else ''} | " + " | ".join(cells) + " |")
    lines += ["", f"`*` = significantly better than {ref} (paired bootstrap, p < 0.05).", ""]
    by_ret = analysis.get("slices", {}).get("by_retriever", {})
    if by_ret:
        names = list(by_ret)
        lines += [f"## {m} by slice", "", "| family | slice | queries | " + " | ".join(names) + " |",
                  "|---|---|---:|" + "---:|" * len(names)]
        for fam, slices in by_ret[names[0]].items():
            for s, row in slices.items():
                vals = " | ".join(f"{by_ret[n][fam].get(s, {}).get(m, float('nan')):.4f}" for n in names)
                lines.append(f"| {fam} | {s} | {row['num_queries']} | {vals} |")
        lines.append("")
    for name, sep in analysis.get("separation", {}).items():
        th = sep.get("threshold") or {}
        aucs = ", ".join(f"{k} {x:.3f}" for k, x in sep.get("auc", {}).items() if x is not None)
        lines += [f"**Score separation {name}**: AUC {aucs}" + (
            f"; threshold {th['threshold']:.3f} (P {th['precision']:.3f}, R {th['recall']:.3f})" if th else ""), ""]
    if against:
        lines += [f"## Against `{against.get('run_id')}`", "", "| metric | other | this | diff | 95% CI | p |",
                  "|---|---:|---:|---:|---|---:|"]
        for mm, c in against.get("comparisons", {}).items():
            lines.append(f"| {mm} | {c['mean_a']:.4f} | {c['mean_b']:.4f} | {c['diff']:+.4f} | "
                         f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | {c['p_value']:.4f} |")
        lines.append("")
    return lines
