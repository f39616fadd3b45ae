"""``strata run --plan`` / ``strata refresh --plan``: the graph of a profile as a table (what runs, on which
engines, which tables in and out, and why a step is off)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.pipeline.graph import plan

if TYPE_CHECKING:  # pragma: no cover
    from strata.config import StrataConfig


def plan_rows(cfg: "StrataConfig", mode: str = "run") -> list[dict[str, str]]:
    """One row per step: name, state (runs | off: why), engines, sections, reads, writes, uses."""
    rows = []
    for s, why in plan(cfg, mode):
        rows.append({"step": s.name, "runs": "yes" if why is None else f"no: {why}",
                     "engines": ", ".join(sorted(s.engines)) or "driver", "config": ", ".join(s.sections) or "-",
                     "reads": ", ".join(s.reads) or "-", "writes": ", ".join(s.writes) or "-",
                     "uses": ", ".join(s.uses) or "-"})
    return rows


def print_plan(cfg: "StrataConfig", mode: str = "run") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"strata {mode} --profile {cfg.profile}: the stage graph")
    for col in ("step", "runs", "engines", "config", "reads", "writes", "uses"):
        table.add_column(col, overflow="fold")
    for row in plan_rows(cfg, mode):
        table.add_row(*row.values(), style=None if row["runs"] == "yes" else "dim")
    Console(width=200).print(table)
