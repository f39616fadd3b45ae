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
