"""Data-platform commands: ingest (more to come: features, backfill)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from strata.config import EngineConfig, SplitConfig

console = Console(stderr=True)


def _spark_kind(fmt: str) -> str:
    return "classic" if fmt == "parquet" and os.environ.get("STRATA_SPARK") == "classic" else "sail"


def register(app: typer.Typer) -> None:
    app.command()(ingest)


def ingest(
    source: str = typer.Option(..., "--source", help="homedepot | bestbuy-small | bestbuy-catalog | "
                               "google-taxonomy | wands | esci | beir"),
    path: Path = typer.Option(..., "--path", help="the dataset file or folder"),
    lakehouse: Path = typer.Option(..., "--lakehouse", help="table root; tables at DIR/<table>"),
    limit: Optional[int] = typer.Option(None, "--limit", help="read at most N records"),
    fmt: str = typer.Option("delta", "--format", help="delta | parquet"),
    dev_fraction: float = typer.Option(0.2, "--dev-fraction"),
) -> None:
    """Load one dataset into the canonical tables (bad rows to quarantine, counts to ingest_log)."""
    from strata.engines import Engines
    from strata.ingest.run import ingest_source
    from strata.tables import Lakehouse

    if not path.exists():
        console.print(f"[red]error:[/red] --path {path} does not exist")
        raise typer.Exit(2)
    lh = Lakehouse(lakehouse, fmt)
    run_id = f"ingest-{source}-{time.strftime('%Y%m%d-%H%M%S')}"
    with Engines(EngineConfig(spark=_spark_kind(fmt))) as eng:
        counts = ingest_source(
            source, path, engines=eng, lakehouse=lh, run_id=run_id, limit=limit,
            split=SplitConfig(dev_fraction=dev_fraction),
        )
    print(json.dumps({"run_id": run_id, "counts": counts, "versions": lh.versions()}, indent=2))
