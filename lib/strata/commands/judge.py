"""``strata judge``: train the distilled judge, calibrate a judge on human labels, score candidates, audit.

Wired into the CLI by ``register(app)`` (adds the ``judge`` sub-app).
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
from rich.markup import escape

from strata.commands.options import ConfigOpt, ProfileOpt, SetOpt, engines_for, load_or_exit

console = Console(stderr=True)
judge_app = typer.Typer(help="Relevance judge: train, calibrate, score candidates, engagement audit.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(judge_app, name="judge")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def _knob(field: str, flag: str) -> Any:
    """A ``--flag`` for one JudgeTrainConfig field: None unless given, its help and default read from the model
    (so each default is stated once, in ``strata.judge.config``)."""
    from strata.judge.config import JudgeTrainConfig

    f = JudgeTrainConfig.model_fields[field]
    default = "" if f.default is None else f" (default {f.default})"
    return typer.Option(None, flag, help=f"{f.description}{default}", show_default=False)


def _judge_default(field: str) -> Any:
    from strata.judge.config import JudgeConfig

    return JudgeConfig.model_fields[field].default


@judge_app.command("train")
def train(
    lakehouse: str = typer.Option(..., "--lakehouse", help="table root holding labels + products"),
    out: Path = typer.Option(..., "--out", help="folder for the trained judge"),
    source: Optional[str] = typer.Option(None, "--source", help="only this labels source"),
    name: Optional[str] = _knob("name", "--name"),
    base: Optional[str] = _knob("base", "--base"),
    epochs: Optional[float] = _knob("epochs", "--epochs"),
    batch_size: Optional[int] = _knob("batch_size", "--batch-size"),
    lr: Optional[float] = _knob("lr", "--lr"),
    max_length: Optional[int] = _knob("max_length", "--max-length"),
    max_pairs: Optional[int] = _knob("max_pairs", "--max-pairs"),
    sample_labels: Optional[int] = typer.Option(None, "--sample-labels",
                                                help="load about N labels (whole queries, stable hash) instead "
                                                "of all: bounds memory on a large labels table"),
    max_seconds: Optional[float] = _knob("max_seconds", "--max-seconds"),
    eval_split: Optional[str] = typer.Option("dev", "--eval-split", help="score this split after training "
                                             "('' to skip)"),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="score at most N eval pairs "
                                             "(a random sample by query)"),
    threads: Optional[int] = _knob("threads", "--threads"),
    layers: Optional[int] = _knob("layers", "--layers"),
    stack_fraction: Optional[float] = _knob("stack_fraction", "--stack-fraction"),
) -> None:
    """Fine-tune the distilled judge on the labels table's train split; report agreement on the dev split."""
    from pydantic import ValidationError

    from strata.judge.config import JudgeTrainConfig
    from strata.judge.runner import JudgeDataError, train_from_lakehouse
    from strata.tables import Lakehouse

    _logging()
    given = dict(name=name, base=base, epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length,
                 max_pairs=max_pairs, max_seconds=max_seconds, threads=threads, layers=layers,
                 stack_fraction=stack_fraction)
    try:
        cfg = JudgeTrainConfig(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as e:
        for err in e.errors():
            flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "judge train"
            console.print(f"[red]error:[/red] {escape(flag)}: {escape(err['msg'])}")
        raise typer.Exit(2) from None
    lh = Lakehouse(lakehouse)
    if not lh.exists("labels") or not lh.exists("products"):
        console.print(f"[red]error:[/red] {escape(str(lakehouse))} needs labels and products tables (run strata ingest)")
        raise typer.Exit(2)
    try:
        summary = train_from_lakehouse(lh, out, cfg, source=source, sample_labels=sample_labels,
                                       eval_split=eval_split, eval_limit=eval_limit)
    except JudgeDataError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    print(json.dumps(summary, indent=2))


def _judge_config(judge: Optional[Path], backend: str, model: Optional[str], **kw):
    from pydantic import ValidationError

    from strata.judge.config import JudgeConfig

    if backend in ("vllm", "openai") and not model:
        console.print(f"[red]error:[/red] --model is required for the {backend} backend")
        raise typer.Exit(2)
    if backend == "distilled":
        if judge is None:
            console.print("[red]error:[/red] --judge JUDGE_DIR is required for the distilled backend")
            raise typer.Exit(2)
        if not (judge / "judge.json").is_file():
            console.print(f"[red]error:[/red] {escape(str(judge))} is not a trained judge (no judge.json)")
            raise typer.Exit(2)
        model = str(judge.expanduser().resolve())
    try:
        return JudgeConfig(backend=backend, model=model or "", **{k: v for k, v in kw.items() if v is not None})
    except ValidationError as e:
        for err in e.errors():
            flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "judge"
            console.print(f"[red]error:[/red] {escape(flag)}: {escape(err['msg'])}")
        raise typer.Exit(2) from None


@judge_app.command("calibrate")
def calibrate(
    judge: Optional[Path] = typer.Option(None, "--judge", help="trained distilled judge dir"),
    dataset: Path = typer.Option(..., "--dataset", help="BEIR folder whose graded qrels are the human labels"),
    out: Path = typer.Option(..., "--out", help="calibration JSON (a .md twin is written next to it)"),
    split: Optional[str] = typer.Option(None, "--split", help="qrels split (default test, dev, ...)"),
    backend: str = typer.Option("distilled", "--backend", help="distilled | transformers | vllm"),
    model: Optional[str] = typer.Option(None, "--model", help="transformers: 'smollm2' or a model dir; vllm: "
                                        "the model (Hugging Face id or path)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="score a random sample of N judged pairs"),
    batch_size: int = typer.Option(64, "--batch-size"),
) -> None:
    """Score a BEIR folder's graded qrels as held-out human labels: accuracy, within-1, kappa vs majority."""
    from strata.judge.runner import JudgeDataError, calibrate_beir
    from strata.sources.beir import BeirFormatError

    _logging()
    cfg = _judge_config(judge, backend, model, batch_size=batch_size)
    try:
        summary = calibrate_beir(cfg, dataset, out, split, limit)
    except (BeirFormatError, FileNotFoundError, JudgeDataError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    print(json.dumps(summary, indent=2))


@judge_app.command("score")
def score(
    lakehouse: str = typer.Option(..., "--lakehouse", help="table root; judgments are written here"),
    candidates: str = typer.Option(..., "--candidates", help="a Delta/parquet folder, or a table name in "
                                   "the lakehouse (labels = re-judge the human-labelled pairs)"),
    judge: Optional[Path] = typer.Option(None, "--judge", help="trained distilled judge dir"),
    backend: str = typer.Option("distilled", "--backend", help="distilled | transformers | vllm (Ray Data LLM on "
                                "GPU workers; always through Ray) | openai"),
    model: Optional[str] = typer.Option(None, "--model", help="transformers: 'smollm2' or a model dir; "
                                        "vllm/openai: the model name"),
    batch_size: int = typer.Option(64, "--batch-size"),
    chunk_rows: int = typer.Option(2048, "--chunk-rows", help="rows between MERGEs into judgments"),
    actors: int = typer.Option(1, "--actors", help="judge actors (vllm: engine replicas)"),
    actor_cpus: float = typer.Option(0.5, "--actor-cpus"),
    limit: Optional[int] = typer.Option(None, "--limit",
                                        help="judge only the first N candidates (by query_norm, product_id)"),
    no_ray: bool = typer.Option(False, "--no-ray", help="score in this process (no Ray Data)"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="openai: endpoint base URL"),
    accelerator_type: Optional[str] = typer.Option(None, "--accelerator-type",
                                                   help="vllm: GPU type of the engine workers (e.g. H100)"),
    max_error_share: Optional[float] = typer.Option(
        None, "--max-error-share", show_default=False,
        help="fail (exit 1) when the judge fails on more than this share of the pairs it judges, 0-1 "
             f"(default {_judge_default('max_error_share')}); failed pairs are retried by the next run"),
    run_id: Optional[str] = typer.Option(None, "--run-id"),
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Judge every candidate (query, product) not yet judged by this judge; resumable, MERGEs per chunk.

    Pairs the judge failed on (error:backend) are written with that status and judged again by the next run."""
    from strata.judge.job import JudgeFailures
    from strata.judge.runner import JudgeDataError, score_candidates
    from strata.tables import Lakehouse

    _logging()
    cfg = _judge_config(judge, backend, model, batch_size=batch_size, chunk_rows=chunk_rows, actors=actors,
                        actor_cpus=actor_cpus, base_url=base_url, accelerator_type=accelerator_type,
                        max_error_share=max_error_share)
    lh = Lakehouse(lakehouse)
    rid = run_id or f"judge-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        # Engines start lazily: a --candidates naming nothing fails before Spark or Ray does.
        with engines_for(load_or_exit(profile, config, set_), ray_num_cpus=os.cpu_count()) as eng:
            summary = score_candidates(eng, lh, candidates, cfg, rid, use_ray=not no_ray, limit=limit)
    except JudgeDataError as e:
        console.print(f"[red]error:[/red] --candidates {escape(str(e))}")
        raise typer.Exit(2) from None
    except JudgeFailures as e:
        print(json.dumps(e.summary, indent=2))
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    print(json.dumps(summary, indent=2))


@judge_app.command("audit")
def audit(
    lakehouse: str = typer.Option(..., "--lakehouse"),
    judge_id: Optional[str] = typer.Option(None, "--judge-id", help="audit one judge's judgments (default all)"),
    min_clicks: int = typer.Option(3, "--min-clicks"),
    min_impressions: int = typer.Option(20, "--min-impressions"),
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Flag judgments that strongly disagree with engagement into the judge_audit table."""
    from strata.judge.audit import AuditRules, run_audit
    from strata.tables import Lakehouse

    _logging()
    lh = Lakehouse(lakehouse)
    rid = f"audit-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        with engines_for(load_or_exit(profile, config, set_)) as eng:
            res = run_audit(eng, lh, judge_id, AuditRules(min_clicks, min_impressions), rid)
    except FileNotFoundError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    print(json.dumps(res, indent=2))
