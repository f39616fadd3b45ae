"""``strata train``: the two-stage fine-tune on Ray Train from ``training_examples``; ``strata soup``: the
weight average of several fine-tunes.

Wired into the CLI by ``register(app)``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("soup")(soup)


def train(
    lakehouse: str = typer.Option(..., "--lakehouse", help="table root holding training_examples + products"),
    out: Path = typer.Option(..., "--out", help="run folder: stage1/, stage2/, model/, mlruns/, train.json"),
    stage: str = typer.Option("both", "--stage", help="1 | 2 | both"),
    profile: str = typer.Option("demo", "--profile", "-p", help="demo | local | cluster"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML overriding the profile"),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="override: train.stage1.max_steps=100"),
    init_model: Optional[str] = typer.Option(None, "--init-model", help="start from this model (default: "
                                             "train.base_model; for --stage 2, pass the Stage 1 model)"),
) -> None:
    """Fine-tune the two-tower retriever: graded SupCon (stage 1), then multi-class circle loss (stage 2; with
    train.stage2.distill_weight > 0 also distils the mining judge's soft grades). Re-running with the same
    --out resumes each stage from its latest checkpoint."""
    from strata.commands.options import engines_for, load_or_exit
    from strata.tables import Lakehouse
    from strata.train.runner import train as run_train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    cfg = load_or_exit(profile, config, sets)
    lh = Lakehouse(lakehouse, cfg.lakehouse.format)
    if not lh.exists("training_examples"):
        console.print(f"[red]error:[/red] {lakehouse} has no training_examples table (run strata mine run)")
        raise typer.Exit(2)
    with engines_for(cfg, ray_num_cpus=os.cpu_count()) as eng:
        summary = run_train(eng, lh, cfg.train, stage, out, init_model)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2, default=str))


def soup(
    models: list[Path] = typer.Option(..., "--model", help="sentence-transformers dir fine-tuned from the same "
                                      "start (repeat, >= 2)"),
    out: Path = typer.Option(..., "--out", help="where the averaged model is saved"),
    weights: list[float] | None = typer.Option(None, "--weight", help="one per --model, in order, summing to 1 "
                                               "(default: uniform); e.g. -0.5 START 1.5 RUN extrapolates RUN"),
) -> None:
    """Average the weights of fine-tunes that share a start ("model soup"): N runs with other seeds or
    settings, trained in parallel, become one model at no extra training cost (BENCHMARKS.md, Training)."""
    from strata.train.soup import average_models

    try:
        path = average_models([str(m) for m in models], out, weights or None)
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    print(json.dumps({"model": str(path), "ingredients": [str(m) for m in models],
                      "weights": weights or [1 / len(models)] * len(models)}, indent=2))
