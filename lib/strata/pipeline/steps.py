"""The graph's step functions: each reads its own config sections and earlier steps' outputs from the
``Context``, calls one stage function with them, records counts in the manifest, and returns its outputs
(paths and ids later steps use; they go into ``state.json``). Stage logic stays in the stage packages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from strata.pipeline.execute import Context


def ingest(ctx: Context) -> dict:
    from strata.ingest.run import ingest as run_ingest

    cfg = ctx.config
    ing = run_ingest(cfg.data, cfg.split, ctx.engines, ctx.lakehouse, run_id=ctx.run_id)
    ctx.manifest.table_versions["after_ingest"] = dict(ing.versions)
    ctx.manifest.extra["ingest"] = ing.counts
    return {"counts": ing.counts, "versions": dict(ing.versions)}


def devset(ctx: Context) -> dict:
    from strata.evaluate.devset import export_devset

    dataset = ctx.config.eval.dataset
    out = ctx.run_dir / "beir" / f"{dataset}-dev"
    ex = export_devset(ctx.engines.spark, ctx.lakehouse, dataset, out)
    ctx.manifest.table_versions["devset_read"] = dict(ex.meta)
    ctx.manifest.outputs["devset"] = str(out)
    return {"dir": str(out), "split": ex.split, "queries": ex.queries, "docs": ex.docs}


def enrich(ctx: Context) -> dict:
    from strata.features.enrich import enrich_uncategorised

    emb = ctx.config.embed  # the run's embedding backend and cache (its model stays the packaged MiniLM)
    counts = enrich_uncategorised(ctx.engines.spark, ctx.lakehouse, ctx.run_id, limit=ctx.config.pipeline.enrich_limit,
                                  backend=emb.backend, cache_dir=emb.cache_dir)
    ctx.manifest.extra["enrich"] = counts
    return {"counts": counts}


def features(ctx: Context) -> dict:
    from strata.features.job import run_features

    counts = run_features(ctx.engines.spark, ctx.lakehouse, ctx.run_id).counts
    ctx.manifest.extra["features"] = counts
    return {"counts": counts}


def judge_train(ctx: Context) -> dict:
    from strata.judge.pairs import catalog_texts, load_pairs
    from strata.judge.trainer import train_judge

    out = ctx.run_dir / "judge"
    pairs = load_pairs(ctx.lakehouse)
    res = train_judge(pairs[pairs["split"] == "train"], out, catalog_texts(ctx.lakehouse), ctx.config.judge_train,
                      data_version={"labels": ctx.lakehouse.version("labels")})
    ctx.manifest.models["judge"] = res.judge_id
    ctx.manifest.outputs["judge"] = str(out)
    return {"dir": str(out), "judge_id": res.judge_id}


def judge_config(ctx: Context) -> Any:
    """The judge later steps use: the one this run trained, else a configured one, else None (unjudged)."""
    cfg = ctx.config
    trained = ctx.output("judge-train", "dir")
    if trained:
        return cfg.judge.model_copy(update={"backend": "distilled", "model": trained})
    if cfg.judge.model or cfg.judge.backend != "distilled":
        return cfg.judge
    return None


def _mine_pass(ctx: Context, mine_cfg: Any, name: str) -> dict:
    """One mining pass (it replaces ``training_examples``); counts in the manifest, its report in
    RUN_DIR/mining.json (``mine``) or RUN_DIR/remining.json (``remine``)."""
    from strata.mine.job import run_mining
    from strata.mine.report import mining_report

    cfg = ctx.config
    run_id = ctx.run_id if name == "mine" else f"{ctx.run_id}-{name}"
    m = run_mining(ctx.engines, ctx.lakehouse, mine_cfg, cfg.split, cfg.embed, judge_config(ctx), run_id)
    ctx.manifest.extra[name] = {"model": mine_cfg.model, "rows": m.rows, "by_source": m.by_source,
                                "removed": m.removed, "judge": m.judge, "timings": m.timings}
    report = ctx.run_dir / ("mining.json" if name == "mine" else "remining.json")
    mining_report(ctx.lakehouse, report)
    ctx.manifest.outputs["mining_report" if name == "mine" else "remining_report"] = str(report)
    return {"report": str(report), "rows": m.rows, "by_source": m.by_source, "model": mine_cfg.model}


def mine(ctx: Context) -> dict:
    cfg = ctx.config.mine
    if ctx.start_model is not None:  # refresh: the champion's own neighbours
        cfg = cfg.model_copy(update={"model": ctx.start_model})
    return _mine_pass(ctx, cfg, "mine")


def remine(ctx: Context) -> dict:
    """Mine and Refine: Stage 2 learns from the Stage 1 model's own hard neighbours, each re-annotated by the
    judge. Mining rewrites training_examples, so Stage 1 has finished on the first table by then."""
    return _mine_pass(ctx, ctx.config.remine_config(ctx.output("train-stage1", "model")), "remine")


def train_stage1(ctx: Context) -> dict:
    from strata.train.runner import train

    first = train(ctx.engines, ctx.lakehouse, ctx.config.train, "1", ctx.run_dir / "train", init_model=ctx.start_model)
    return {"model": first["stages"][-1]["model_dir"], "stages": first["stages"]}


def train_stage2(ctx: Context) -> dict:
    from strata.train.runner import train

    out = ctx.run_dir / "train"
    summary = train(ctx.engines, ctx.lakehouse, ctx.config.train, "2", out,
                    init_model=ctx.output("train-stage1", "model"))
    summary["stages"] = ctx.output("train-stage1", "stages", []) + summary["stages"]
    (out / "train.json").write_text(json.dumps(summary, indent=2, default=str))
    model = ctx.run_dir / "model"
    shutil.rmtree(model, ignore_errors=True)
    shutil.copytree(summary["model"], model)
    ctx.manifest.outputs["model"] = str(model)
    ctx.manifest.extra["train"] = {k: v for k, v in summary.items() if k != "config"}
    return {"model": str(model), "stages": [{k: s[k] for k in ("stage", "steps", "examples_per_s")}
                                            for s in summary["stages"]]}


def evaluate(ctx: Context) -> dict:
    """Every configured retriever, the trained model (and its judge re-ranking), and in a refresh the champion,
    on the dev set; then all metrics, hybrid, slices, significance and score separation (analysis.json)."""
    from strata.evaluate.analysis import analyze_run_dir, lakehouse_inputs
    from strata.evaluate.beir_eval import evaluate_beir
    from strata.sources.beir import read_beir

    cfg, run_dir = ctx.config, ctx.run_dir
    ds = read_beir(ctx.output("devset", "dir"), split=ctx.output("devset", "split"))
    retrievers = list(cfg.eval.retrievers)
    if ctx.start_model is not None:
        retrievers.append(ctx.start_model)
    trained = ctx.output("train-stage2", "model")
    rerank = None
    if trained:
        retrievers.append(trained)
        judge = ctx.output("judge-train", "dir")
        if cfg.eval.rerank_k and judge:
            from strata.evaluate.rerank import RerankConfig

            rerank = RerankConfig(judge=judge, k=cfg.eval.rerank_k, alpha=cfg.eval.rerank_alpha)
            retrievers.append(f"rerank:{trained}")
    pair_sims: dict = {}  # labelled-pair cosine similarities per dense model, for score separation
    evaluation = evaluate_beir(ds, retrievers, k=cfg.eval.k, embed_cfg=cfg.embed, engines=ctx.engines,
                               max_queries=cfg.eval.max_queries, runs_out=run_dir / "runs", pair_sims=pair_sims,
                               rerank=rerank)
    for name, m in evaluation.get("retrievers", {}).items():
        if m.get("model_id"):
            ctx.manifest.models[name] = m["model_id"]
        for sub, secs in (m.get("seconds") or {}).items():
            ctx.manifest.timings[f"{name}.{sub}"] = round(float(secs), 3)
    metrics = run_dir / "metrics.json"
    metrics.write_text(json.dumps(evaluation, indent=2) + "\n")
    ctx.manifest.outputs["metrics"] = str(metrics)
    stats, cats = lakehouse_inputs(ctx.engines.spark, ctx.lakehouse, cfg.eval.dataset)
    # the dev set's folder, which a skipped devset step (a refresh) left in an earlier run's folder
    analyze_run_dir(run_dir, query_stats=stats, doc_category=cats, pair_sims=pair_sims,
                    beir_folder=ctx.output("devset", "dir"))
    ctx.manifest.outputs["analysis"] = str(run_dir / "analysis.json")
    return {"dir": str(run_dir), "metrics": str(metrics), "champion": ctx.start_model, "candidate": trained}


def report(ctx: Context) -> dict:
    import shlex
    import sys

    from strata.evaluate.analysis import load_analysis
    from strata.pipeline.report import write_analysis_reports, write_report

    run_dir = Path(ctx.output("evaluate", "dir"))
    evaluation = json.loads(Path(ctx.output("evaluate", "metrics")).read_text())
    command = " ".join(shlex.quote(a) for a in ["strata", *sys.argv[1:]]) if sys.argv else "strata run"
    path = write_report(run_dir / "report.md", run_id=run_dir.name, evaluation=evaluation,
                        ingest_counts=ctx.output("ingest", "counts", []), timings=ctx.manifest.timings,
                        table_versions=ctx.manifest.table_versions, command=command)
    write_analysis_reports(run_dir, *load_analysis(run_dir))  # report.html + analysis in report.md
    ctx.manifest.outputs["report_html"] = str(run_dir / "report.html")
    return {"report": str(path), "html": str(run_dir / "report.html")}


def _per_query(ctx: Context, name: str) -> dict[str, float]:
    per_query = json.loads((Path(ctx.output("evaluate", "dir")) / "per_query.json").read_text())
    return per_query[name][ctx.config.refresh.gate.metric]


def gate(ctx: Context) -> dict:
    """The candidate against the champion on the same dev queries; the candidate is registered either way
    (tagged with the decision), so the registry keeps every model a refresh trained."""
    from strata.evaluate.significance import gate as decide

    cfg, registry = ctx.config.refresh, ctx.services["registry"]
    champion, candidate = ctx.output("evaluate", "champion"), ctx.output("evaluate", "candidate")
    decision = decide(_per_query(ctx, champion), _per_query(ctx, candidate), cfg.gate)
    metric = cfg.gate.metric.replace("@", "_at_")  # MLflow tag keys allow no "@"
    cmp = decision.comparison
    ver = registry.register(candidate, ctx.services["models_dir"], {
        "origin": "refresh", "run_id": ctx.run_id, "parent": ctx.start_version,
        metric: round(cmp.mean_b, 5), f"champion_{metric}": round(cmp.mean_a, 5),
        "p_value": round(cmp.p_value, 5), "gate": "promote" if decision.promote else "reject"})
    return {"version": ver.version, "promote": decision.promote, "decision": decision.to_dict()}


def promote(ctx: Context) -> dict:
    registry = ctx.services["registry"]
    if ctx.output("gate", "promote"):
        registry.promote(ctx.output("gate", "version"))
    return {"champion": registry.champion().version}


def index(ctx: Context) -> dict:
    """The champion's product index, swapped in whole (a reader never sees a half-written folder)."""
    from strata.embed.stage import embed_catalog

    champ = ctx.services["registry"].champion()
    catalog = ctx.config.refresh.index_catalog or ctx.config.eval.dataset
    state_dir = ctx.services["state_dir"]
    final, tmp, old = state_dir / "index", state_dir / "index.tmp", state_dir / "index.old"
    shutil.rmtree(tmp, ignore_errors=True)
    embed_catalog(ctx.engines, ctx.lakehouse, catalog, ctx.config.embed.model_copy(update={"model": champ.source}),
                  tmp)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return {"dir": str(final), "champion": champ.version, "catalog": catalog}
