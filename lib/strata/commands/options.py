"""Options every command that loads a config shares, and the one way commands load it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.markup import escape

from strata.config import ConfigError, StrataConfig, load_config

if TYPE_CHECKING:  # pragma: no cover
    from strata.engines import Engines

console = Console(stderr=True)

ProfileOpt = typer.Option("demo", "--profile", "-p", help="demo | local | cluster")
ConfigOpt = typer.Option(None, "--config", "-c", help="YAML laid over the profile")
SetOpt = typer.Option(None, "--set", "-s", help="override, e.g. --set eval.max_queries=200 (repeatable)")


def load_or_exit(profile: str, config: Optional[Path], sets: Optional[list[str]]) -> StrataConfig:
    """The resolved config; a config error is printed (field and value) and exits 2."""
    try:
        return load_config(profile, config, sets or [])
    except ConfigError as e:
        console.print(f"[red]config error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None


def engines_for(cfg: StrataConfig, **overrides: object) -> "Engines":
    """The one way a command gets its engines: the profile's ``engine`` section (with ``--set engine.*`` and the
    STRATA_SPARK / STRATA_SPARK_REMOTE / STRATA_RAY_ADDRESS environment applied by ``Engines``), plus what
    the command itself must fix (e.g. every local CPU for a training job)."""
    from strata.engines import Engines

    return Engines(cfg.engine.model_copy(update=overrides) if overrides else cfg.engine)
