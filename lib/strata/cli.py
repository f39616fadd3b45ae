"""``strata``: one command per stage, each a thin shell over a library function.

Exit codes: 0 success, 1 a stage failed, 2 bad usage or config. Config errors print the field and value.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from strata.config import ConfigError, EmbedConfig, EngineConfig, load_config
from rich.markup import escape

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)

ProfileOpt = typer.Option("demo", "--profile", "-p", help="demo | local | cluster")
ConfigOpt = typer.Option(None, "--config", "-c", help="YAML laid over the profile")
SetOpt = typer.Option(None, "--set", "-s", help="override, e.g. --set eval.max_queries=200 (repeatable)")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("py4j", "urllib3", "filelock", "sentence_transformers", "ray", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    _setup_logging(verbose)


def _config(profile: str, config: Optional[Path], sets: Optional[list[str]]):
    try:
        return load_config(profile, config, sets or [])
    except ConfigError as e:
        console.print(f"[red]config error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None


@app.command()
def run(
    profile: str = ProfileOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="RUN_DIR (default runs/<profile>-<time>)"),
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """The main job: ingest -> dev set -> embed + FAISS -> evaluate; writes metrics, manifest, report."""
    from strata.pipeline.run import run_pipeline

    cfg = _config(profile, config, set_)
    out = out or Path("runs") / f"{profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_pipeline(cfg, out)
    console.print(Path(result.report_path).read_text())
    print(result.run_dir)  # last line on stdout: the run directory


@app.command("export-beir")
def export_beir(
    lakehouse: Path = typer.Option(..., "--lakehouse"),
    dataset: str = typer.Option("homedepot", "--dataset", help="labels source to export"),
    split: str = typer.Option("dev", "--split"),
    out: Path = typer.Option(..., "--out", help="BEIR folder to write"),
) -> None:
    """Write a labelled split + its full catalog as a BEIR folder (for `strata eval` or other toolkits)."""
    from strata.engines import Engines
    from strata.evaluate.devset import export_devset
    from strata.tables import Lakehouse

    with Engines(EngineConfig()) as eng:
        ex = export_devset(eng.spark, Lakehouse(lakehouse), dataset, out, split)
    print(json.dumps({"out": str(out), "queries": ex.queries, "docs": ex.docs}))


@app.command("eval")
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
) -> None:
    """Full-corpus retrieval over a BEIR folder: nDCG@10, recall@100, MRR@10 per model, as JSON.

    A model named rerank:BASE (BASE = baseline | bm25 | MODEL_DIR | hybrid:a+b) re-orders BASE's top
    --rerank-k by the --judge."""
    from strata.engines import Engines
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
    engines = Engines(EngineConfig()) if ray and any(m not in lexical for m in model) else None
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


@app.command("config")
def show_config(
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Print the resolved config (profile + file + overrides) as YAML."""
    import yaml

    cfg = _config(profile, config, set_)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


# Command groups living in their own modules (strata.commands.<area>.register(app)).
_COMMAND_MODULES = (
    "strata.commands.data",
    "strata.commands.embed",
    "strata.commands.evaluate",
    "strata.commands.judge",
    "strata.commands.mine",
    "strata.commands.train",
    "strata.commands.submit",
    "strata.commands.refresh",
)


def _register_commands() -> None:
    import importlib

    for mod in _COMMAND_MODULES:
        importlib.import_module(mod).register(app)


_register_commands()


def main() -> None:
    """Console entry point. Exits with os._exit after flushing: delta-rs can abort in interpreter
    teardown after a MERGE (rc 134) when the work is already done, which must not fail the job."""
    code = 0
    try:
        rv = app(standalone_mode=False, prog_name="strata")
        code = rv if isinstance(rv, int) else 0  # click returns Exit codes when not standalone
    except typer.Exit as e:
        code = e.exit_code
    except SystemExit as e:  # click usage errors
        code = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # noqa: BLE001
        # Usage errors (typer vendors its own click, so match by shape, not class): message + their code.
        if hasattr(e, "show") and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            code = e.exit_code
        elif type(e).__name__ == "Abort":
            code = 130
        else:
            console.print_exception(max_frames=8)
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
