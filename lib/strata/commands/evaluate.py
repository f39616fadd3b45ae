"""Evaluation commands: ``strata eval`` (full-corpus retrieval over a BEIR folder), ``strata export-beir``,
``strata report RUN_DIR [--against OTHER]`` and ``strata compare A B``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from strata.embed.config import EmbedConfig
from strata.commands.options import ConfigOpt, ProfileOpt, SetOpt, engines_for, load_or_exit

console = Console(stderr=True)
out = Console()


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)
    app.command("export-beir")(export_beir)
    app.command()(report)
    app.command()(compare)


def _fail(msg: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {escape(str(msg))}")
    raise typer.Exit(code)


def _analysis(run_dir: Path, separation: bool, refresh: bool, beir: Path | None = None):
    from strata.evaluate.analysis import analyze_run_dir, load_analysis

    if not run_dir.is_dir():
        _fail(f"{run_dir}: no such run directory")
    if refresh or not (run_dir / "analysis.json").is_file() or not (run_dir / "per_query.json").is_file():
        try:
            analyze_run_dir(run_dir, separation=separation, beir_folder=beir)
        except (FileNotFoundError, ValueError) as e:
            _fail(str(e))
    return load_analysis(run_dir)


def report(
    run_dir: Path = typer.Argument(..., help="a `strata run` output directory"),
    against: Optional[Path] = typer.Option(None, "--against", help="another run dir (e.g. the champion)"),
    separation: bool = typer.Option(True, "--separation/--no-separation",
                                    help="encode labelled pairs for score separation (dense models)"),
    refresh: bool = typer.Option(False, "--refresh", help="recompute analysis.json even if present"),
    beir: Optional[Path] = typer.Option(
        None, "--beir", help="BEIR dataset folder when not RUN_DIR/beir/<dataset> (e.g. after "
        "`strata eval --out RUN_DIR/metrics.json --runs-out RUN_DIR/runs`)"),
) -> None:
    """Write RUN_DIR/report.html (self-contained) and the analysis section of RUN_DIR/report.md."""
    from strata.pipeline.report import write_analysis_reports

    analysis, per_query = _analysis(run_dir, separation, refresh, beir)
    if against is not None and not against.is_dir():
        _fail(f"--against {against}: no such run directory")
    html_path, md_path = write_analysis_reports(run_dir, analysis, per_query, against=against)
    out.print(str(html_path))
    out.print(str(md_path))


def compare(
    champion: Path = typer.Argument(..., help="run dir of the champion (A)"),
    challenger: Path = typer.Argument(..., help="run dir of the challenger (B); may equal A"),
    metric: str = typer.Option("ndcg@10", "--metric"),
    retriever_a: Optional[str] = typer.Option(None, "--retriever-a", help="default: A's best on --metric"),
    retriever_b: Optional[str] = typer.Option(None, "--retriever-b", help="default: B's best on --metric"),
    min_lift: float = typer.Option(0.0, "--min-lift", help="required relative lift, 0.02 = +2%"),
    alpha: float = typer.Option(0.05, "--alpha"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Paired bootstrap of B against A and the promotion gate. Exit 0 = promote, 1 = refused."""
    from strata.evaluate.analysis import best_retriever
    from strata.evaluate.significance import GateConfig, gate

    a, pa = _analysis(champion, False, False)
    b, pb = _analysis(challenger, False, False)
    ra = retriever_a or best_retriever(a, metric)
    rb = retriever_b or best_retriever(b, metric)
    for run, name, pq in ((champion, ra, pa), (challenger, rb, pb)):
        if name not in pq:
            _fail(f"{run}: no retriever {name!r} (have {sorted(pq)})")
        if metric not in pq[name]:
            _fail(f"{run}: metric {metric!r} not computed (have {sorted(pq[name])})")
    d = gate(pa[ra][metric], pb[rb][metric], GateConfig(metric=metric, min_lift=min_lift, alpha=alpha))
    result = {"champion": f"{champion}:{ra}", "challenger": f"{challenger}:{rb}", **d.to_dict()}
    if as_json:
        out.print_json(json.dumps(result))
    else:
        c = d.comparison
        out.print(f"{metric}: champion {champion.name}:{ra} {c.mean_a:.4f}  challenger {challenger.name}:{rb} "
                  f"{c.mean_b:.4f}  diff {c.diff:+.4f} ({c.relative_lift:+.2%})  95% CI "
                  f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]  p={c.p_value:.4f}  n={c.num_queries}")
        out.print(("PROMOTE: " if d.promote else "REFUSED: ") + "; ".join(d.reasons))
    raise typer.Exit(0 if d.promote else 1)


def export_beir(
    lakehouse: str = typer.Option(..., "--lakehouse"),
    dataset: str = typer.Option("homedepot", "--dataset", help="labels source to export"),
    split: str = typer.Option("dev", "--split"),
    out: Path = typer.Option(..., "--out", help="BEIR folder to write"),
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Write a labelled split + its full catalog as a BEIR folder (for `strata eval` or other toolkits)."""
    from strata.evaluate.devset import export_devset
    from strata.tables import Lakehouse

    with engines_for(load_or_exit(profile, config, set_)) as eng:
        ex = export_devset(eng.spark, Lakehouse(lakehouse), dataset, out, split)
    print(json.dumps({"out": str(out), "queries": ex.queries, "docs": ex.docs}))


def eval_(
    dataset: Path = typer.Option(..., "--dataset", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/"),
    model: list[str] = typer.Option(..., "--model", help="baseline | bm25 | MODEL_DIR (repeatable)"),
    out: Path = typer.Option(..., "--out", help="metrics JSON"),
    split: Optional[str] = typer.Option(None, "--split", help="qrels split (default test, dev, ...)"),
    k: int = typer.Option(100, "--k", min=100, help="retrieval depth"),
    max_queries: Optional[int] = typer.Option(None, "--max-queries"),
    batch_size: int = typer.Option(128, "--batch-size"),
    max_seq_length: Optional[int] = typer.Option(
        None, "--max-seq-length", help="token limit; default the model's own (256 for MiniLM)"
    ),
    ray: bool = typer.Option(True, "--ray/--no-ray", help="embed through Ray Data (default) or in-process"),
    runs_out: Optional[Path] = typer.Option(None, "--runs-out", help="also write TREC run files here"),
    judge: Optional[Path] = typer.Option(None, "--judge", help="distilled judge for rerank:BASE models"),
    rerank_k: int = typer.Option(20, "--rerank-k", min=2, help="top candidates the judge re-orders"),
    rerank_alpha: float = typer.Option(1.0, "--rerank-alpha", min=0.0,
                                       help="fused = z(base) + alpha z(judge); 0 = judge order only"),
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Full-corpus retrieval over a BEIR folder: nDCG@10, recall@100, MRR@10 per model, as JSON.

    A model named rerank:BASE (BASE = baseline | bm25 | MODEL_DIR | hybrid:a+b) re-orders BASE's top
    --rerank-k by the --judge."""
    from strata.evaluate.beir_eval import evaluate_beir
    from strata.sources.beir import BeirFormatError, read_beir

    try:
        ds = read_beir(dataset, split)
    except BeirFormatError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    from strata.evaluate.rerank import RerankConfig, rerank_base

    rr = None
    try:
        reranked = [m for m in model if rerank_base(m)]
    except ValueError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    if reranked:
        if judge is None:
            console.print("[red]error:[/red] a rerank:BASE model needs --judge JUDGE_DIR")
            raise typer.Exit(2)
        rr = RerankConfig(judge=str(judge), k=rerank_k, alpha=rerank_alpha or None)
    embed_cfg = EmbedConfig(batch_size=batch_size, max_seq_length=max_seq_length, actor_cpus=0.5)
    lexical = ("bm25", "rerank:bm25")
    cfg = load_or_exit(profile, config, set_)
    engines = engines_for(cfg) if ray and any(m not in lexical for m in model) else None
    try:
        result = evaluate_beir(
            ds, list(model), k=k, embed_cfg=embed_cfg, engines=engines, max_queries=max_queries,
            runs_out=runs_out, rerank=rr,
        )
    finally:
        if engines is not None:
            engines.close()
    # Single model: its metrics at the top level (what scripts read); always the full breakdown too.
    if len(model) == 1:
        result = {**result["retrievers"][model[0]], **result}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
