"""Data-platform commands: ingest (with search-log backfill), enrich-categories, features."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from strata.config_base import SplitConfig
from strata.commands.options import ConfigOpt, ProfileOpt, SetOpt, engines_for, load_or_exit
from rich.markup import escape

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command("enrich-categories")(enrich_categories)
    app.command()(features)


def _fail(msg: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {escape(str(msg))}")
    raise typer.Exit(code)


def _job_errors():
    from strata.features.job import MissingInputError
    from strata.ingest.runlog import AccountingError
    from strata.sources.base import SourceSchemaError

    return (SourceSchemaError, MissingInputError, AccountingError, ValueError, KeyError)


def _day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"--backfill {what}: {text!r} is not a date (YYYY-MM-DD)", 2)
        raise  # unreachable


def ingest(
    source: str = typer.Option(..., "--source", help="homedepot | bestbuy-small | bestbuy-catalog | "
                               "google-taxonomy | wands | esci | beir | table (with --mapping)"),
    path: Path = typer.Option(..., "--path", help="the dataset file or folder"),
    lakehouse: str = typer.Option(..., "--lakehouse", help="table root; tables at DIR/<table>"),
    limit: Optional[int] = typer.Option(None, "--limit", help="read at most N records"),
    fmt: str = typer.Option("delta", "--format", help="delta | parquet"),
    dev_fraction: float = typer.Option(0.2, "--dev-fraction"),
    backfill: Optional[tuple[str, str]] = typer.Option(
        None, "--backfill", help="FROM TO (YYYY-MM-DD, inclusive): reprocess these search-log days "
        "(bestbuy-small); without it only days after the watermark are processed"),
    mapping: Optional[Path] = typer.Option(
        None, "--mapping", help="--source table: a YAML file with the table mapping (target, namespace, "
        "columns, grades...; docs/tables.md)"),
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Load one dataset into the canonical tables (bad rows to quarantine, counts to ingest_log/run_log)."""
    from strata.ingest.run import ingest_source
    from strata.tables import Lakehouse

    if not path.exists():
        _fail(f"--path {path} does not exist", 2)
    days = None
    if backfill and all(backfill):
        days = (_day(backfill[0], "FROM"), _day(backfill[1], "TO"))
    lh = Lakehouse(lakehouse, fmt)
    run_id = f"ingest-{source}-{time.strftime('%Y%m%d-%H%M%S')}"
    table_cfg = None
    if source == "table" or mapping is not None:
        import yaml
        from pydantic import ValidationError

        from strata.ingest.config import TableSourceConfig

        if source != "table" or mapping is None:
            _fail("--mapping goes with --source table, and --source table needs --mapping FILE.yaml", 2)
        try:
            table_cfg = TableSourceConfig(**(yaml.safe_load(mapping.read_text()) or {}))
        except (OSError, yaml.YAMLError, ValidationError, TypeError) as e:
            _fail(f"--mapping {mapping}: {e}", 2)
    with engines_for(load_or_exit(profile, config, set_)) as eng:  # the profile's engines
        try:
            if table_cfg is not None:
                from strata.ingest.table_source import ingest_table

                counts = [ingest_table(eng.spark, lh, path, table_cfg, run_id=run_id,
                                       split=SplitConfig(dev_fraction=dev_fraction), limit=limit)]
            else:
                counts = ingest_source(
                    source, path, engines=eng, lakehouse=lh, run_id=run_id, limit=limit,
                    split=SplitConfig(dev_fraction=dev_fraction), backfill=days,
                )
        except _job_errors() as e:
            _fail(f"ingest {source}: {e}")
    print(json.dumps({"run_id": run_id, "counts": counts, "versions": lh.versions()}, indent=2, default=str))


def enrich_categories(
    lakehouse: str = typer.Option(..., "--lakehouse", help="table root"),
    source: str = typer.Option("homedepot", "--source", help="products namespace to enrich"),
    taxonomy: str = typer.Option("google", "--taxonomy", help="taxonomy source to assign from"),
    threshold: float = typer.Option(0.45, "--threshold", help="min cosine to assign"),
    min_margin: float = typer.Option(0.0, "--min-margin", help="min lead over the 2nd-best path"),
    model: str = typer.Option("baseline", "--model"),
    limit: Optional[int] = typer.Option(None, "--limit", help="at most N products (in id order)"),
    refresh: bool = typer.Option(False, "--refresh", help="recompute products already assigned"),
    fmt: str = typer.Option("delta", "--format", help="delta | parquet"),
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Assign taxonomy categories (with confidence) to products without one; low confidence stays NULL."""
    from strata.features.enrich import EnrichConfig, enrich_categories as run
    from strata.tables import Lakehouse

    lh = Lakehouse(lakehouse, fmt)
    run_id = f"enrich-{source}-{time.strftime('%Y%m%d-%H%M%S')}"
    full = load_or_exit(profile, config, set_)
    cfg = EnrichConfig(source=source, taxonomy_source=taxonomy, threshold=threshold, min_margin=min_margin,
                       model=model, limit=limit, refresh=refresh,
                       backend=full.embed.backend, cache_dir=full.embed.cache_dir)  # the profile's embedding
    with engines_for(full) as eng:  # the profile's engines
        try:
            counts = run(eng.spark, lh, run_id, cfg)
        except _job_errors() as e:
            _fail(f"enrich-categories: {e}")
    print(json.dumps({"run_id": run_id, "counts": counts}, indent=2, default=str))


def features(
    lakehouse: str = typer.Option(..., "--lakehouse", help="table root"),
    fmt: str = typer.Option("delta", "--format", help="delta | parquet"),
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Build product_features, taxonomy_neighbours, query_stats, query_product_engagement, query_attributes."""
    from strata.features.job import run_features
    from strata.tables import Lakehouse

    lh = Lakehouse(lakehouse, fmt)
    run_id = f"features-{time.strftime('%Y%m%d-%H%M%S')}"
    with engines_for(load_or_exit(profile, config, set_)) as eng:  # the profile's engines
        try:
            result = run_features(eng.spark, lh, run_id)
        except _job_errors() as e:
            _fail(f"features: {e}")
    print(json.dumps({"run_id": run_id, "counts": result.counts, "versions": lh.versions()}, indent=2))
