"""The main job: ingest -> dev set -> embed + index (Ray Data, FAISS) -> evaluate -> manifest and report.

Stages are plain functions from their own modules; this module only sequences them, shares one set of
engines across them, and records what ran. A failed run still leaves a manifest saying so.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.config import StrataConfig
from strata.engines import Engines
from strata.pipeline.manifest import Manifest
from strata.pipeline.report import write_report
from strata.tables import Lakehouse

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    evaluation: dict[str, Any]
    manifest_path: Path
    report_path: Path


def lakehouse_for(config: StrataConfig, run_dir: Path) -> Lakehouse:
    root = Path(config.lakehouse.root) if config.lakehouse.root else run_dir / "lakehouse"
    return Lakehouse(root, config.lakehouse.format)


def _train_stages(config: StrataConfig, eng: Engines, lakehouse: Lakehouse, run_dir: Path,
                  manifest: Manifest) -> str | None:
    """enrich -> features -> judge -> mine -> train, as ``config.pipeline`` asks; returns the trained model dir."""
    p = config.pipeline
    if p.enrich:
        from strata.features.enrich import enrich_uncategorised

        with manifest.stage("enrich"):
            manifest.extra["enrich"] = enrich_uncategorised(eng.spark, lakehouse, manifest.run_id,
                                                            limit=p.enrich_limit)
    if p.features:
        from strata.features.job import run_features

        with manifest.stage("features"):
            manifest.extra["features"] = run_features(eng.spark, lakehouse, manifest.run_id).counts
    judge_cfg = None
    if p.judge:
        from strata.judge.distilled import catalog_texts, load_pairs, train_judge

        with manifest.stage("judge_train"):
            pairs = load_pairs(lakehouse)
            res = train_judge(pairs[pairs["split"] == "train"], run_dir / "judge", catalog_texts(lakehouse),
                              stack_fraction=p.judge_stack_fraction, layers=p.judge_layers,
                              max_pairs=p.judge_max_pairs, max_seconds=p.judge_max_seconds, max_length=48,
                              data_version={"labels": lakehouse.version("labels")})
        manifest.models["judge"] = res.judge_id
        manifest.outputs["judge"] = str(run_dir / "judge")
        judge_cfg = config.judge.model_copy(update={"backend": "distilled", "model": str(run_dir / "judge")})
    elif config.judge.model or config.judge.backend != "distilled":
        judge_cfg = config.judge
    if p.mine:
        with manifest.stage("mine"):
            _mine(config, eng, lakehouse, config.mine, judge_cfg, manifest, run_dir, "mine")
    if not p.train:
        return None
    from strata.train.runner import train

    if p.remine is None:
        with manifest.stage("train"):
            summary = train(eng, lakehouse, config.train, "both", run_dir / "train")
    else:
        # Mine and Refine: Stage 2 learns from the Stage 1 model's own hard neighbours, each re-annotated by
        # the judge. Mining rewrites training_examples, so Stage 1 has finished on the first table by then.
        with manifest.stage("train_stage1"):
            first = train(eng, lakehouse, config.train, "1", run_dir / "train")
        stage1_model = first["stages"][-1]["model_dir"]
        with manifest.stage("remine"):
            _mine(config, eng, lakehouse, config.remine_config(stage1_model), judge_cfg, manifest, run_dir,
                  "remine")
        with manifest.stage("train_stage2"):
            summary = train(eng, lakehouse, config.train, "2", run_dir / "train", init_model=stage1_model)
        summary["stages"] = first["stages"] + summary["stages"]
        (run_dir / "train" / "train.json").write_text(json.dumps(summary, indent=2, default=str))
    import shutil

    shutil.rmtree(run_dir / "model", ignore_errors=True)
    shutil.copytree(summary["model"], run_dir / "model")
    manifest.outputs["model"] = str(run_dir / "model")
    manifest.extra["train"] = {k: v for k, v in summary.items() if k != "config"}
    return str(run_dir / "model")


def _mine(config: StrataConfig, eng: Engines, lakehouse: Lakehouse, mine_cfg: Any, judge_cfg: Any,
          manifest: Manifest, run_dir: Path, name: str) -> None:
    """One mining pass (it replaces ``training_examples``); counts in the manifest, its report in
    RUN_DIR/mining.json (``mine``) or RUN_DIR/remining.json (``remine``)."""
    from strata.mine.job import mining_report, run_mining

    run_id = manifest.run_id if name == "mine" else f"{manifest.run_id}-{name}"
    m = run_mining(eng, lakehouse, mine_cfg, config.split, config.embed, judge_cfg, run_id)
    manifest.extra[name] = {"model": mine_cfg.model, "rows": m.rows, "by_source": m.by_source,
                            "removed": m.removed, "judge": m.judge, "timings": m.timings}
    report = run_dir / ("mining.json" if name == "mine" else "remining.json")
    mining_report(lakehouse, report)
    manifest.outputs["mining_report" if name == "mine" else "remining_report"] = str(report)


def run_pipeline(config: StrataConfig, run_dir: str | Path, engines: Engines | None = None) -> RunResult:
    """Run every stage of the configured profile into ``run_dir``; returns where things were written."""
    from strata.evaluate.beir_eval import evaluate_beir
    from strata.evaluate.devset import export_devset
    from strata.ingest.run import ingest
    from strata.sources.beir import read_beir

    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(run_id=run_dir.name, config=config)
    lakehouse = lakehouse_for(config, run_dir)
    own_engines = engines is None
    eng = engines or Engines(config.engine)
    status = "failed"
    try:
        with manifest.stage("ingest"):
            ing = ingest(config, eng, lakehouse, run_id=manifest.run_id)
        manifest.table_versions["after_ingest"] = dict(ing.versions)
        manifest.extra["ingest"] = ing.counts

        dataset = config.eval.dataset
        with manifest.stage("devset"):
            ex = export_devset(eng.spark, lakehouse, dataset, run_dir / "beir" / f"{dataset}-dev")
            ds = read_beir(ex.out, split=ex.split)  # evaluation holds the corpus; the export did not
        manifest.table_versions["devset_read"] = dict(ex.meta)
        manifest.outputs["devset"] = str(run_dir / "beir" / f"{dataset}-dev")

        retrievers = list(config.eval.retrievers)
        trained = _train_stages(config, eng, lakehouse, run_dir, manifest)
        rerank = None
        if trained:
            retrievers.append(trained)
            if config.eval.rerank_k and (run_dir / "judge").is_dir():
                from strata.evaluate.rerank import RerankConfig

                rerank = RerankConfig(judge=str(run_dir / "judge"), k=config.eval.rerank_k,
                                      alpha=config.eval.rerank_alpha)
                retrievers.append(f"rerank:{trained}")

        pair_sims: dict = {}  # labelled-pair cosine similarities per dense model, for score separation
        with manifest.stage("embed_index_evaluate"):
            evaluation = evaluate_beir(
                ds,
                retrievers,
                k=config.eval.k,
                embed_cfg=config.embed,
                engines=eng,
                max_queries=config.eval.max_queries,
                runs_out=run_dir / "runs",
                pair_sims=pair_sims,
                rerank=rerank,
            )
        for name, m in evaluation.get("retrievers", {}).items():
            if m.get("model_id"):
                manifest.models[name] = m["model_id"]
        for name, m in evaluation.get("retrievers", {}).items():
            for step, secs in (m.get("seconds") or {}).items():
                manifest.timings[f"{name}.{step}"] = round(float(secs), 3)

        metrics_path = run_dir / "metrics.json"
        metrics_path.write_text(json.dumps(evaluation, indent=2) + "\n")
        manifest.outputs["metrics"] = str(metrics_path)

        with manifest.stage("analyze"):  # all metrics, hybrid, slices, significance, separation
            from strata.evaluate.analysis import analyze_run_dir, lakehouse_inputs

            stats, cats = lakehouse_inputs(eng.spark, lakehouse, dataset)
            analyze_run_dir(run_dir, query_stats=stats, doc_category=cats, pair_sims=pair_sims)
        manifest.outputs["analysis"] = str(run_dir / "analysis.json")
        manifest.outputs["report_html"] = str(run_dir / "report.html")
        status = "succeeded"
    finally:
        if own_engines:
            eng.close()
        manifest_path = manifest.write(run_dir / "manifest.json", status=status)
    report_path = write_report(
        run_dir / "report.md",
        run_id=manifest.run_id,
        evaluation=evaluation,
        ingest_counts=ing.counts,
        timings=manifest.timings,
        table_versions=manifest.table_versions,
        command=" ".join(shlex.quote(a) for a in ["strata", *sys.argv[1:]]) if sys.argv else "strata run",
    )
    from strata.evaluate.analysis import load_analysis
    from strata.pipeline.report import write_analysis_reports

    write_analysis_reports(run_dir, *load_analysis(run_dir))  # report.html + analysis in report.md
    return RunResult(run_dir, evaluation, manifest_path, report_path)
