"""``strata infra render [--check]``: write the graph-derived parts of infra/ and docs/ (see strata.ops.infra).

Wired into the CLI by ``register(app)``.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
infra_app = typer.Typer(add_completion=False, no_args_is_help=True, help="infra/ files rendered from the graph")


def register(app: typer.Typer) -> None:
    app.add_typer(infra_app, name="infra")


@infra_app.command("render")
def render(check: bool = typer.Option(False, "--check", help="write nothing; exit 1 if a file is out of date")) -> None:
    """Render the Databricks tasks, the Airflow steps, the KubeRay entrypoints and docs/architecture.md's graph
    table from the stage graph."""
    from strata.ops.infra import InfraDrift
    from strata.ops.infra import render as run_render

    try:
        changed = run_render(check=check)
    except InfraDrift as e:
        console.print(f"[red]drift:[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    console.print("rendered: " + (", ".join(changed) if changed else "every file already up to date"))
