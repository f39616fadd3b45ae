"""``strata refresh``: the nightly pipeline as one command (see strata.ops.refresh).

Wired into the CLI by ``register(app)``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("refresh")(refresh)


def refresh(
    out: str = typer.Option(..., "--out", help="state dir, a folder or an s3:// (gs, abfs) URI: state.json, lock, "
                            "registry (mlruns), index, runs/"),
    lakehouse: Optional[str] = typer.Option(None, "--lakehouse", help="table root (default: lakehouse.root, "
                                             "else OUT/lakehouse)"),
    profile: str = typer.Option("demo", "--profile", "-p", help="demo | local | cluster"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML overriding the profile"),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="override: refresh.gate.min_lift=0.01"),
    plan: bool = typer.Option(False, "--plan", help="print the graph the refresh runs and exit"),
) -> None:
    """The graph of `strata run`, started from the champion, then gate -> promote -> index. Steps whose
    inputs did not change are skipped; exit 0 = done (promoted or not), 3 = locked."""
    from strata.commands.options import load_or_exit
    from strata.ops.refresh import RefreshLocked
    from strata.ops.refresh import refresh as run_refresh

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    cfg = load_or_exit(profile, config, sets)
    if plan:
        from strata.pipeline.plan import print_plan

        print_plan(cfg, "refresh")
        return
    root = lakehouse or cfg.lakehouse.root or f"{str(out).rstrip('/')}/lakehouse"
    cfg = cfg.model_copy(update={"lakehouse": cfg.lakehouse.model_copy(update={"root": str(root)})})
    try:
        res = run_refresh(cfg, out)
    except RefreshLocked as e:
        console.print(f"[red]locked:[/red] {escape(str(e))}")
        raise typer.Exit(3) from None
    print(json.dumps(res.__dict__, indent=2, default=str))
