"""``strata refresh``: the nightly pipeline as one command, incremental and safe to kill.

ingest (new log days, catalog changes) -> features (+ category enrichment) -> mine with the champion model
(the judge scores only candidates it has not judged; with ``pipeline.remine`` the pass takes its settings, as
the champion's own judged neighbours are Stage 2's data) -> continue training from the champion -> evaluate
candidate vs champion on the dev split -> promotion gate -> promote (MLflow registry alias ``champion``)
-> rebuild the product index with the champion.

Each step has an input fingerprint (content hashes of the tables it reads, the champion version, the
config it uses); a step whose fingerprint equals the last completed one is skipped. State lives in
``STATE_DIR/state.json``, written atomically after each completed step, so a killed refresh redoes only the
step it was in. A file lock (``flock``, released by the OS when the process dies) keeps two refreshes apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from strata.config import StrataConfig
from strata.ops.registry import Registry
from strata.tables import Lakehouse

log = logging.getLogger(__name__)

STEPS = ("ingest", "features", "mine", "train", "evaluate", "promote", "index")


class RefreshLocked(RuntimeError):
    """Another refresh holds the lock on this state dir."""


@contextlib.contextmanager
def refresh_lock(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    fh = open(state_dir / "refresh.lock", "w")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefreshLocked(f"another strata refresh is running on {state_dir}") from None
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def table_fingerprint(spark: Any, lakehouse: Lakehouse, name: str) -> str:
    """Content hash of a table (row count + sum of row hashes): unchanged by a no-op MERGE, which still
    writes a new Delta version."""
    if not lakehouse.exists(name):
        return "absent"
    from pyspark.sql import functions as F

    df = lakehouse.read(spark, name)
    row = df.agg(F.count(F.lit(1)).alias("n"),
                 F.sum(F.xxhash64(*[F.col(c) for c in df.columns]).cast("decimal(38,0)")).alias("h")).collect()[0]
    return f"{row['n']}:{row['h']}"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class RefreshResult:
    run_id: str
    steps: dict[str, dict] = field(default_factory=dict)
    champion_before: str | None = None
    champion_after: str | None = None
    promoted: bool = False
    candidate_version: str | None = None


class _State:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict = json.loads(path.read_text()) if path.is_file() else {"steps": {}}

    def done(self, step: str, fp: str) -> bool:
        return self.data["steps"].get(step, {}).get("inputs") == fp

    def outputs(self, step: str) -> dict:
        return self.data["steps"].get(step, {}).get("outputs", {})

    def complete(self, step: str, fp: str, outputs: dict) -> None:
        self.data["steps"][step] = {"inputs": fp, "outputs": outputs, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)


def _fail_point(step: str) -> None:
    """Fault injection for the crash tests: ``STRATA_REFRESH_DIE_AT=<step>`` kills the process there."""
    if os.environ.get("STRATA_REFRESH_DIE_AT") == step:
        log.warning("refresh: dying at %s (STRATA_REFRESH_DIE_AT)", step)
        os._exit(137)


def _per_query(engines: Any, ds: Any, model: str, cfg: StrataConfig, max_queries: int | None) -> dict[str, float]:
    from strata.evaluate.beir_eval import sample_queries
    from strata.evaluate.metrics import evaluate_run
    from strata.evaluate.retrievers import make_retriever

    metric = cfg.refresh.gate.metric
    doc_ids = list(ds.corpus)
    r = make_retriever(model, cfg.embed, None)
    r.index(doc_ids, [ds.doc_text(d) for d in doc_ids])
    queries = sample_queries(ds.judged_queries(), max_queries)
    run = r.search({q: ds.queries[q] for q in queries}, cfg.eval.k)
    res = evaluate_run({q: ds.qrels[q] for q in queries}, run, [metric], per_query=True)
    return res["per_query"][metric]


def refresh(config: StrataConfig, state_dir: str | Path, engines: Any = None) -> RefreshResult:
    """Run the nightly refresh once (see module docstring); returns what ran, what was skipped, the gate."""
    from strata.engines import Engines

    state_dir = Path(state_dir).expanduser().resolve()
    with refresh_lock(state_dir):
        own = engines is None
        eng = engines or Engines(config.engine)
        try:
            return _refresh(config, state_dir, eng)
        finally:
            if own:
                eng.close()


def refresh_mine_config(cfg: StrataConfig, champion: str, judged: bool) -> tuple[Any, Any]:
    """The refresh's one mining pass over ``champion``'s neighbours, and what its fingerprint records.

    With ``pipeline.remine`` and a configured judge the pass is ``strata run``'s re-mining pass: the champion is
    already a trained model, so its own judged neighbours are Mine and Refine's Stage 2 data (one pass a night,
    not two). Otherwise it is ``mine`` as configured."""
    if cfg.pipeline.remine is not None and judged:
        return cfg.remine_config(champion), {"mine": cfg.mine.model_dump(), "remine": cfg.pipeline.remine}
    if cfg.pipeline.remine is not None:
        log.warning("refresh: pipeline.remine needs a judge the refresh can load (judge.model); mining with "
                    "`mine` as configured, unjudged")
    return cfg.mine.model_copy(update={"model": champion}), cfg.mine.model_dump()


def _refresh(cfg: StrataConfig, state_dir: Path, eng: Any) -> RefreshResult:
    from strata.embed.encoder import resolve_model

    run_id = time.strftime("refresh-%Y%m%d-%H%M%S")
    run_dir = state_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _State(state_dir / "state.json")
    lh = Lakehouse(cfg.lakehouse.root, cfg.lakehouse.format)
    registry = Registry(cfg.refresh.registry_uri or (state_dir / "mlruns").as_uri(), cfg.refresh.model_name)
    dataset = cfg.refresh.dataset or cfg.eval.dataset
    res = RefreshResult(run_id)
    spark = eng.spark

    def fp(*tables: str, **extra: Any) -> str:
        return _digest({**{t: table_fingerprint(spark, lh, t) for t in tables}, **extra})

    def record(step: str, ran: bool, t0: float, **info: Any) -> None:
        res.steps[step] = {"ran": ran, "seconds": round(time.perf_counter() - t0, 2), **info}
        (run_dir / "manifest.json").write_text(json.dumps(res.__dict__, indent=2, default=str))
        log.info("refresh %s: %s", step, "ran" if ran else "skipped (inputs unchanged)")

    # 1. ingest: incremental by itself (log days after the watermark; catalogs MERGE on their keys)
    t0 = time.perf_counter()
    from strata.ingest.run import ingest

    ing = ingest(cfg, eng, lh, run_id=run_id)
    record("ingest", True, t0, counts=ing.counts)
    _fail_point("ingest")

    # 2. features (+ enrichment of uncategorised products)
    t0 = time.perf_counter()
    f = fp("products", "taxonomy", "search_events", "labels")
    if not state.done("features", f):
        from strata.features.job import run_features

        enriched: list[dict] = []
        if cfg.refresh.enrich and lh.exists("taxonomy"):
            from strata.features.enrich import enrich_uncategorised

            # as strata run's pipeline.enrich: every catalog without any category of its own
            enriched = enrich_uncategorised(spark, lh, run_id)
        counts = run_features(spark, lh, run_id).counts
        state.complete("features", f, {"counts": counts, "enrich": enriched})
        record("features", True, t0, enrich=enriched)
    else:
        record("features", False, t0)
    _fail_point("features")

    # champion: the registry alias; the first refresh registers the off-the-shelf model as the bootstrap
    champ = registry.champion()
    if champ is None:
        champ = registry.register(resolve_model(cfg.train.base_model), state_dir / "models",
                                  {"origin": "bootstrap", "run_id": run_id})
        registry.promote(champ.version)
        log.info("refresh: no champion yet; registered %s as version %s (bootstrap)", cfg.train.base_model,
                 champ.version)
    res.champion_before = champ.version

    # 3. mine with the champion (judge: only pairs it has not judged yet)
    t0 = time.perf_counter()
    judge_cfg = cfg.judge if (cfg.judge.model or cfg.judge.backend != "distilled") else None
    mine_cfg, mine_fp = refresh_mine_config(cfg, champ.source, judged=judge_cfg is not None)
    f = fp("labels", "products", "product_features", "taxonomy_neighbours", "query_attributes",
           "query_product_engagement", champion=champ.version, mine=mine_fp,
           judge=judge_cfg.model_dump() if judge_cfg else None)
    if not state.done("mine", f):
        from strata.mine.job import run_mining

        m = run_mining(eng, lh, mine_cfg, cfg.split, cfg.embed, judge_cfg, run_id)
        state.complete("mine", f, {"rows": m.rows, "by_source": m.by_source})
        record("mine", True, t0, rows=m.rows, by_source=m.by_source, removed=m.removed)
    else:
        record("mine", False, t0)
    _fail_point("mine")

    # 4. train from the champion
    t0 = time.perf_counter()
    f = fp("training_examples", champion=champ.version, train=cfg.train.model_dump())
    candidate = None
    if not state.done("train", f):
        from strata.train.runner import train

        summary = train(eng, lh, cfg.train, "both", run_dir / "train", init_model=champ.source)
        candidate = summary["model"]
        state.complete("train", f, {"model": candidate})
        record("train", True, t0, model=candidate, stages=[{k: s[k] for k in ("stage", "steps", "examples_per_s")}
                                                            for s in summary["stages"]])
    else:
        record("train", False, t0)
    _fail_point("train")

    # 5. evaluate candidate vs champion on the same dev queries, 6. gate + promote. A candidate trained by a
    # run that died before its gate decision is evaluated by the next run.
    candidate = candidate or state.outputs("train").get("model")
    gate_fp = _digest({"candidate": candidate, "champion": champ.version, "gate": cfg.refresh.gate.model_dump()})
    if candidate is not None and Path(candidate).is_dir() and not state.done("promote", gate_fp):
        t0 = time.perf_counter()
        from strata.evaluate.devset import export_devset
        from strata.sources.beir import read_beir

        beir = state_dir / "beir" / fp("labels", "products", dataset=dataset)
        if not (beir / "corpus.jsonl").is_file():
            tmp = beir.with_name(beir.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            export_devset(spark, lh, dataset, tmp)
            tmp.rename(beir)
        ds = read_beir(beir, split="dev")
        mq = cfg.refresh.eval_max_queries or cfg.eval.max_queries
        pq_champ = _per_query(eng, ds, champ.source, cfg, mq)
        pq_cand = _per_query(eng, ds, candidate, cfg, mq)
        (run_dir / "eval.json").write_text(json.dumps({"champion": pq_champ, "candidate": pq_cand}))
        record("evaluate", True, t0, queries=len(pq_cand))
        _fail_point("evaluate")

        t0 = time.perf_counter()
        from strata.evaluate.significance import gate

        decision = gate(pq_champ, pq_cand, cfg.refresh.gate)
        metric = cfg.refresh.gate.metric.replace("@", "_at_")  # MLflow tag keys allow no "@"
        cmp = decision.comparison
        ver = registry.register(candidate, state_dir / "models", {
            "origin": "refresh", "run_id": run_id, "parent": champ.version,
            f"{metric}": round(cmp.mean_b, 5), f"champion_{metric}": round(cmp.mean_a, 5),
            "p_value": round(cmp.p_value, 5), "gate": "promote" if decision.promote else "reject"})
        res.candidate_version = ver.version
        _fail_point("promote")
        if decision.promote:
            registry.promote(ver.version)
            res.promoted = True
        state.complete("promote", gate_fp, {"version": ver.version, "promote": decision.promote})
        record("promote", decision.promote, t0, decision=decision.to_dict(), version=ver.version)
    else:
        record("evaluate", False, time.perf_counter())
        record("promote", False, time.perf_counter(), decision=None)

    champ_now = registry.champion()
    res.champion_after = champ_now.version if champ_now else None

    # 7. index with the champion
    t0 = time.perf_counter()
    catalog = cfg.refresh.index_catalog or dataset
    f = fp("products", champion=res.champion_after, catalog=catalog, embed=cfg.embed.model_dump())
    if not state.done("index", f):
        from strata.embed.stage import embed_catalog

        tmp = state_dir / "index.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        embed_catalog(eng, lh, catalog, cfg.embed.model_copy(update={"model": champ_now.source}), tmp)
        final = state_dir / "index"
        old = state_dir / "index.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        state.complete("index", f, {"dir": str(final), "champion": res.champion_after})
        record("index", True, t0, champion=res.champion_after)
    else:
        record("index", False, t0)
    return res
