"""``strata mine``: mine training examples (structured + ANN + judge guard) and inspect a query's examples.

Wired into the CLI by ``register(app)`` (adds the ``mine`` sub-app).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
mine_app = typer.Typer(help="Hard-negative mining into training_examples, and inspection.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(mine_app, name="mine")


def judge_choice(cfg: Any, judge: Optional[Path], no_judge: bool) -> tuple[Any, Any]:
    """(mine config, judge config or None) for ``strata mine run``: ``--no-judge`` wins; an explicit ``--judge``
    judges even where the profile's ``mine.use_judge`` is false (the local profile's first pass is unjudged)."""
    if no_judge:
        return cfg.mine, None
    if judge is not None:
        return (cfg.mine.model_copy(update={"use_judge": True}),
                cfg.judge.model_copy(update={"backend": "distilled", "model": str(judge)}))
    if cfg.judge.model or cfg.judge.backend != "distilled":
        return cfg.mine, cfg.judge
    return cfg.mine, None


@mine_app.command("run")
def run(
    lakehouse: str = typer.Option(..., "--lakehouse", help="table root (labels/engagement, products, features)"),
    profile: str = typer.Option("demo", "--profile", "-p", help="demo | local | cluster"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML overriding the profile"),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="override: mine.n_ann=10 (repeatable)"),
    judge: Optional[Path] = typer.Option(None, "--judge", help="distilled judge dir for the false-negative "
                                         "guard (default: the config's judge, if set)"),
    no_judge: bool = typer.Option(False, "--no-judge", help="margin rule instead of the judge"),
    report: Optional[Path] = typer.Option(None, "--report", help="write the per-source report JSON here"),
    no_ray: bool = typer.Option(False, "--no-ray", help="embed and judge in this process"),
    run_id: Optional[str] = typer.Option(None, "--run-id"),
) -> None:
    """Mine every seeded catalog and overwrite training_examples; prints counts, removals and timings."""
    from strata.commands.options import engines_for, load_or_exit
    from strata.mine.job import run_mining
    from strata.mine.report import mining_report
    from strata.tables import Lakehouse

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    cfg = load_or_exit(profile, config, sets)
    mine_cfg, judge_cfg = judge_choice(cfg, judge, no_judge)
    lh = Lakehouse(lakehouse, cfg.lakehouse.format)
    rid = run_id or f"mine-{time.strftime('%Y%m%d-%H%M%S')}"
    with engines_for(cfg, ray_num_cpus=os.cpu_count()) as eng:
        res = run_mining(eng, lh, mine_cfg, cfg.split, cfg.embed, judge_cfg, rid, use_ray=not no_ray)
    rep = mining_report(lh, report)
    out = json.loads(res.to_json())
    out["report"] = rep["overall"]
    print(json.dumps(out, indent=2))


@mine_app.command("inspect")
def inspect(
    lakehouse: str = typer.Option(..., "--lakehouse"),
    query: str = typer.Option(..., "--query", help="the query (normalised before lookup)"),
    catalog: Optional[str] = typer.Option(None, "--catalog"),
    as_json: bool = typer.Option(False, "--json", help="print rows as JSON instead of a table"),
) -> None:
    """A query's positives and mined negatives with sources, grades and scores."""
    from strata.mine.inspect import query_examples
    from strata.tables import Lakehouse

    rows = query_examples(Lakehouse(lakehouse), query, catalog)
    if rows.empty:
        console.print(f"no training examples for {query!r}")
        raise typer.Exit(1)
    if as_json:
        print(rows.to_json(orient="records", indent=2))
        return
    t = Table(title=f"training examples for {query!r}")
    for c in ("grade", "source", "mined_from", "rank", "score", "judge_p2", "product_id", "title"):
        t.add_column(c)
    for r in rows.itertuples(index=False):
        t.add_row(str(r.grade), r.source, r.mined_from or "", "" if r.rank is None else str(r.rank),
                  f"{r.score:.3f}" if r.score == r.score else "", "" if r.judge_p2 != r.judge_p2 else f"{r.judge_p2:.2f}",
                  r.product_id, (r.title or "")[:70])
    Console().print(t)
