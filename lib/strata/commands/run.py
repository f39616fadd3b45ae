"""``strata run`` (the stage graph for a profile) and ``strata config`` (the resolved config).

Wired into the CLI by ``register(app)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from strata.commands.options import ConfigOpt, ProfileOpt, SetOpt, console, load_or_exit


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command("config")(show_config)


def run(
    profile: str = ProfileOpt,
    out: Optional[str] = typer.Option(None, "--out", "-o", help="RUN_DIR, a folder or an s3:// (gs, abfs) URI "
                                      "(default runs/<profile>-<time>)"),
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
    only: Optional[list[str]] = typer.Option(None, "--only", help="run just this step of the graph (repeatable), "
                                             "reading earlier steps' outputs from RUN_DIR/state.json"),
    plan: bool = typer.Option(False, "--plan", help="print the profile's graph (steps, engines, tables in and "
                              "out, which steps run and why not) and exit"),
) -> None:
    """The stage graph for a profile: ingest -> dev set -> ... -> evaluate -> report; writes metrics, manifest,
    report (`--plan` shows the steps)."""
    from strata.pipeline.graph import GraphError

    cfg = load_or_exit(profile, config, set_)
    if plan:
        from strata.pipeline.plan import print_plan

        print_plan(cfg, "run")
        return
    from strata.pipeline.run import run_pipeline

    from strata.storage import location

    out = out or str(Path("runs") / f"{profile}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        result = run_pipeline(cfg, out, only=list(only or []) or None)
    except GraphError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    if result.report_path is not None:
        console.print(location(str(result.report_path)).read_text())
    print(result.run_dir)  # last line on stdout: the run directory


def show_config(
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Print the resolved config (profile + file + overrides) as YAML."""
    import yaml

    cfg = load_or_exit(profile, config, set_)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
