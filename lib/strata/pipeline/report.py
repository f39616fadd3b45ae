"""report.md: the run in one page a person reads first (the numbers, where they came from, what ran)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_METRIC_ORDER = ("ndcg@10", "recall@100", "mrr@10")


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def metrics_table(evaluation: dict[str, Any]) -> list[str]:
    rets = evaluation.get("retrievers", {})
    if not rets:
        return ["(no retrievers evaluated)"]
    lines = [
        "| retriever | " + " | ".join(_METRIC_ORDER) + " | queries | model |",
        "|---|" + "---:|" * len(_METRIC_ORDER) + "---:|---|",
    ]
    for name, m in rets.items():
        vals = " | ".join(_fmt(m.get(k, "")) for k in _METRIC_ORDER)
        lines.append(f"| {name} | {vals} | {m.get('num_queries', '')} | {m.get('model_id', '-')} |")
    return lines


def best_line(evaluation: dict[str, Any], metric: str = "ndcg@10") -> str:
    rets = {k: v for k, v in evaluation.get("retrievers", {}).items() if metric in v}
    if not rets:
        return ""
    best = max(rets, key=lambda k: rets[k][metric])
    others = ", ".join(f"{k} {rets[k][metric]:.4f}" for k in rets if k != best)
    return f"**Best {metric}: {best} ({rets[best][metric]:.4f})**" + (f"; {others}." if others else ".")


def write_report(
    path: Path,
    *,
    run_id: str,
    evaluation: dict[str, Any],
    ingest_counts: list[dict[str, Any]],
    timings: dict[str, float],
    table_versions: dict[str, Any],
    command: str,
) -> Path:
    lines = [
        f"# Strata run `{run_id}`",
        "",
        f"Dev split **{evaluation.get('dataset', '?')}**: {evaluation.get('num_docs', '?')} products in the "
        "corpus (full-corpus retrieval), graded relevance (2 exact, 1 partial, 0 irrelevant).",
        "",
        best_line(evaluation),
        "",
        "## Retrieval quality",
        "",
        *metrics_table(evaluation),
        "",
        "nDCG uses the grade as gain; recall and MRR count grade >= 1 as relevant. Every judged query is "
        "averaged; one whose judged products are all irrelevant scores 0 for every retriever.",
        "",
        "## Ingest",
        "",
        "| source | table | read | accepted | quarantined | upserted |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for c in ingest_counts:
        lines.append(
            f"| {c.get('source')} | {c.get('target_table')} | {c.get('read')} | {c.get('accepted')} | "
            f"{c.get('quarantined')} | {c.get('upserted', '')} |"
        )
    lines += ["", "Every row read is either accepted or in the `quarantine` table with its reason.", ""]
    lines += ["## Stages", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    lines += ["", "## Tables read", "", "| table | Delta version |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in table_versions.get("after_ingest", {}).items() if v is not None]
    lines += ["", "## Reproduce", "", "```", command, "```", ""]
    path.write_text("\n".join(lines))
    return path


# ---------------------------------------------------------------- analysis reports (report.html + report.md)

ANALYSIS_BEGIN = "<!-- strata:analysis:begin -->"
ANALYSIS_END = "<!-- strata:analysis:end -->"


def _read_json(path: Path) -> Any:
    import json

    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {"error": f"{path.name} is not valid JSON"}


def against_comparison(
    run_dir: Path, analysis: dict, per_query: dict, other_dir: Path, n_resamples: int = 10_000
) -> dict:
    """This run's best retriever vs the other run's best, paired over the queries both scored."""
    from strata.evaluate.analysis import PRIMARY, analyze_run_dir, best_retriever, compare_runs, load_analysis

    other_dir = Path(other_dir)
    if not (other_dir / "analysis.json").is_file() or not (other_dir / "per_query.json").is_file():
        analyze_run_dir(other_dir, separation=False, n_resamples=n_resamples)
    other_analysis, other_pq = load_analysis(other_dir)
    a_name = best_retriever(other_analysis, PRIMARY)
    b_name = best_retriever(analysis, PRIMARY)
    comps = compare_runs(other_pq, per_query, a_name, b_name, n_resamples=n_resamples)
    return {"run_id": other_dir.name, "a_name": f"{other_dir.name}:{a_name}", "b_name": b_name,
            "comparisons": comps}


def write_analysis_reports(
    run_dir: str | Path, analysis: dict, per_query: dict, against: str | Path | None = None
) -> tuple[Path, Path]:
    """Write RUN_DIR/report.html and put the analysis section into RUN_DIR/report.md (replacing an
    earlier one; creating report.md if the run wrote none)."""
    from strata.evaluate.report_html import analysis_markdown, render_html

    run_dir = Path(run_dir)
    cmp = against_comparison(run_dir, analysis, per_query, Path(against)) if against else None
    page = render_html(
        analysis,
        run_id=run_dir.name,
        judge_calibration=_read_json(run_dir / "judge_calibration.json"),
        training_curves=_read_json(run_dir / "training_curves.json"),
        against=cmp,
    )
    html_path = run_dir / "report.html"
    html_path.write_text(page, encoding="utf-8")
    md_path = run_dir / "report.md"
    section = "\n".join([ANALYSIS_BEGIN, *analysis_markdown(analysis, cmp),
                         "Plots: see report.html.", ANALYSIS_END])
    md = md_path.read_text(encoding="utf-8") if md_path.is_file() else f"# Strata run `{run_dir.name}`\n"
    if ANALYSIS_BEGIN in md and ANALYSIS_END in md:
        head, rest = md.split(ANALYSIS_BEGIN, 1)
        md = head + section + rest.split(ANALYSIS_END, 1)[1]
    else:
        marker = "## Retrieval quality"
        md = md.replace(marker, section + "\n\n" + marker, 1) if marker in md else md.rstrip() + "\n\n" + section + "\n"
    md_path.write_text(md, encoding="utf-8")
    return html_path, md_path
