"""Everything the report shows about one run directory, computed from what the run already wrote.

Inputs (written by ``run_pipeline``): ``metrics.json``, ``beir/<dataset>/`` (the dev set as BEIR) and
``runs/<retriever>.run`` (TREC runs, depth >= 100). Nothing is re-indexed: the graded metrics, the
hybrid (RRF of bm25 + baseline runs), the slices and the significance tests come from the run files;
score separation encodes only the labelled (query, product) pairs with each dense model.

Output: ``analysis.json`` (+ ``per_query.json``, the per-query metric values the bootstrap uses).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from strata.evaluate.beir_eval import run_file_name, sample_queries
from strata.evaluate.fusion import DEFAULT_COMPONENTS, HYBRID, rrf
from strata.evaluate.rerank import RERANK
from strata.evaluate.metrics import evaluate_run, write_trec_run
from strata.evaluate.significance import paired_bootstrap
from strata.evaluate.slices import SpellingVocab, assign_slices, popularity_source, slice_metrics

log = logging.getLogger(__name__)

REPORT_METRICS = (
    "ndcg@5",
    "ndcg@10",
    "ndcg@20",
    "recall@10",
    "recall@100",
    "precision@10",
    "mrr@10",
)
PRIMARY = "ndcg@10"
REFERENCE = "baseline"  # the champion a run is compared against when nothing else is given
LEXICAL = {"bm25"}
MIN_VOCAB_WORDS = 2000  # below this the misspelling heuristic flags ordinary words: no spelling slice


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{n}: expected 'qid Q0 docid rank score tag'")
            run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run


def load_run_dir(run_dir: str | Path, beir_folder: str | Path | None = None):
    """(metrics.json dict, BeirDataset, {retriever: run}) of a finished run directory. ``beir_folder``:
    the dataset when it is not under RUN_DIR/beir/ (e.g. ``strata eval --out DIR/metrics.json
    --runs-out DIR/runs`` on a public BEIR dataset)."""
    from strata.sources.beir import read_beir

    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.json (is this a finished `strata run` directory?)")
    evaluation = json.loads(metrics_path.read_text())
    beir_root = run_dir / "beir"
    folder = Path(beir_folder) if beir_folder else beir_root / str(evaluation.get("dataset", ""))
    if not folder.is_dir() and not beir_folder:
        cands = sorted(p for p in beir_root.glob("*") if p.is_dir()) if beir_root.is_dir() else []
        if not cands:
            raise FileNotFoundError(f"{run_dir}: no beir/<dataset>/ folder with the dev set")
        folder = cands[0]
    ds = read_beir(folder, evaluation.get("split"))
    runs = {}
    names = list(evaluation.get("retrievers", {}))
    for name in names:
        p = run_dir / "runs" / f"{run_file_name(name)}.run"
        if p.is_file():
            runs[name] = read_trec_run(p)
        else:
            log.warning("%s: no run file for %s", run_dir, name)
    return evaluation, ds, runs


def evaluated_queries(ds, evaluation: Mapping[str, Any]) -> dict[str, str]:
    """The same queries ``evaluate_beir`` scored (its hash sample when ``max_queries`` capped them)."""
    judged = ds.judged_queries()
    ns = [m.get("num_queries") for m in evaluation.get("retrievers", {}).values() if m.get("num_queries")]
    cap = min(ns) if ns else None
    return sample_queries(judged, cap if cap and cap < len(judged) else None)


def _dense_model(name: str) -> str | None:
    if name in LEXICAL or name == HYBRID or name.startswith(HYBRID + ":") or name.startswith(RERANK + ":"):
        return None  # no vectors of its own (a re-ranked run's embeddings are its base model's)
    return name


def default_encode_fn(model: str, max_seq_length: int = 48, batch_size: int = 128) -> Callable:
    from strata.embed.encoder import encode, load_encoder

    enc = load_encoder(model, max_seq_length=max_seq_length)
    return lambda texts: encode(enc, texts, batch_size=batch_size)


def analyze(
    ds,
    queries: Mapping[str, str],
    runs: Mapping[str, Mapping[str, Mapping[str, float]]],
    *,
    add_hybrid: bool = True,
    reference: str = REFERENCE,
    query_stats: Mapping[str, Mapping] | None = None,
    synthetic: Mapping[str, bool] | None = None,
    doc_category: Mapping[str, str | None] | None = None,
    encode_fns: Mapping[str, Callable] | None = None,
    pair_sims: Mapping[str, Mapping[int, list[float]]] | None = None,
    max_pairs: int = 20_000,
    n_resamples: int = 10_000,
    min_vocab_words: int = MIN_VOCAB_WORDS,
) -> tuple[dict, dict, dict]:
    """(analysis, per_query, extra_runs). ``encode_fns``: dense retriever name -> texts -> vectors;
    ``pair_sims``: labelled-pair similarities already computed (``evaluate_beir(pair_sims=...)``)."""
    qrels = {q: ds.qrels[q] for q in queries}
    runs = dict(runs)
    extra: dict[str, dict] = {}
    if add_hybrid and HYBRID not in runs and all(c in runs for c in DEFAULT_COMPONENTS):
        extra[HYBRID] = rrf([runs[c] for c in DEFAULT_COMPONENTS], depth=100)
        runs[HYBRID] = extra[HYBRID]
    metrics: dict[str, dict] = {}
    per_query: dict[str, dict] = {}
    for name, run in runs.items():
        r = evaluate_run(qrels, {q: run.get(q, {}) for q in queries}, REPORT_METRICS, per_query=True)
        per_query[name] = r.pop("per_query")
        metrics[name] = r
    vocab = SpellingVocab(ds.corpus[d].get("title", "") for d in ds.corpus)
    spelling_note = "token outside the catalog title vocabulary within ~2 edits of a word in it"
    if len(vocab.words) < min_vocab_words:  # a small catalog's titles do not cover normal words
        spelling_note = f"not sliced: title vocabulary has {len(vocab.words)} words (< {min_vocab_words})"
    use_vocab = vocab if len(vocab.words) >= min_vocab_words else None
    slices = assign_slices(queries, qrels, vocab=use_vocab, query_stats=query_stats, synthetic=synthetic)
    slice_counts = {f: {} for f in slices}
    for f, assign in slices.items():
        for s in assign.values():
            slice_counts[f][s] = slice_counts[f].get(s, 0) + 1
    misspelled_examples = [
        (queries[q], vocab.misspelled_tokens(queries[q]))
        for q, s in sorted(slices.get("spelling", {}).items())
        if s == "misspelled"
    ][:8]
    by_slice = {name: slice_metrics(per_query[name], slices) for name in runs}
    # significance: every retriever against the reference, per metric
    comparisons: dict[str, dict] = {}
    if reference in per_query:
        for name in runs:
            if name == reference:
                continue
            comparisons[name] = {
                m: paired_bootstrap(
                    per_query[reference][m], per_query[name][m], metric=m, n_resamples=n_resamples
                ).to_dict()
                for m in REPORT_METRICS
            }
    separation: dict[str, dict] = {}
    if encode_fns or pair_sims:
        from strata.evaluate.separation import labelled_pair_sims, separation_from_sims

        texts = {d: ds.doc_text(d) for q in qrels for d in qrels[q] if d in ds.corpus}
        todo: dict[str, Any] = dict(pair_sims or {})
        todo.update({n: fn for n, fn in (encode_fns or {}).items() if n not in todo})
        for name, fn in todo.items():
            if callable(fn):
                sims = labelled_pair_sims(qrels, queries, texts, fn, max_pairs=max_pairs)
            else:
                sims = {int(g): list(v) for g, v in fn.items()}
            sep = separation_from_sims(sims)
            sep["sims"] = {str(g): [round(x, 5) for x in v] for g, v in sims.items()}
            separation[name] = sep
    category: dict[str, dict] = {}
    if doc_category:
        from strata.evaluate.category import category_accuracy, intended_categories

        qcat = intended_categories(qrels, doc_category)
        if qcat:
            for name, run in runs.items():
                c = category_accuracy(run, qcat, doc_category, k=10)
                c.pop("per_query")
                category[name] = c
    analysis = {
        "dataset": ds.name,
        "split": ds.split,
        "num_docs": len(ds.corpus),
        "num_queries": len(queries),
        "metrics_order": list(REPORT_METRICS),
        "primary_metric": PRIMARY,
        "reference": reference if reference in runs else None,
        "retrievers": metrics,
        "slices": {
            "counts": slice_counts,
            "popularity_source": popularity_source(queries, query_stats),
            "misspelled_examples": misspelled_examples,
            "spelling_note": spelling_note,
            "by_retriever": by_slice,
        },
        "comparisons": comparisons,
        "separation": separation,
        "category_accuracy": category,
    }
    return analysis, per_query, extra


def analyze_run_dir(
    run_dir: str | Path,
    *,
    separation: bool = True,
    max_pairs: int = 20_000,
    query_stats: Mapping[str, Mapping] | None = None,
    doc_category: Mapping[str, str | None] | None = None,
    encode_fns: Mapping[str, Callable] | None = None,
    pair_sims: Mapping[str, Mapping[int, list[float]]] | None = None,
    n_resamples: int = 10_000,
    beir_folder: str | Path | None = None,
    min_vocab_words: int = MIN_VOCAB_WORDS,
) -> dict:
    """Analyse a finished run dir; writes ``analysis.json``, ``per_query.json``, ``runs/hybrid.run``."""
    run_dir = Path(run_dir)
    evaluation, ds, runs = load_run_dir(run_dir, beir_folder)
    queries = evaluated_queries(ds, evaluation)
    if encode_fns is None and separation:
        seq = 48
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text())
            seq = int(manifest["config"]["embed"].get("max_seq_length") or seq)
        except (OSError, KeyError, ValueError, TypeError):
            pass
        encode_fns = {n: default_encode_fn(m, seq) for n in runs
                      if (m := _dense_model(n)) and n not in (pair_sims or {})}
    analysis, per_query, extra = analyze(
        ds,
        queries,
        runs,
        query_stats=query_stats,
        doc_category=doc_category,
        encode_fns=encode_fns if separation else None,
        pair_sims=pair_sims if separation else None,
        max_pairs=max_pairs,
        n_resamples=n_resamples,
        min_vocab_words=min_vocab_words,
    )
    for name, run in extra.items():
        write_trec_run(run, run_dir / "runs" / f"{run_file_name(name)}.run", tag=run_file_name(name))
    (run_dir / "analysis.json").write_text(json.dumps(analysis, indent=1) + "\n")
    (run_dir / "per_query.json").write_text(json.dumps(per_query) + "\n")
    return analysis


def load_analysis(run_dir: str | Path) -> tuple[dict, dict]:
    run_dir = Path(run_dir)
    return (
        json.loads((run_dir / "analysis.json").read_text()),
        json.loads((run_dir / "per_query.json").read_text()),
    )


def compare_runs(
    per_query_a: Mapping[str, Mapping[str, Mapping[str, float]]],
    per_query_b: Mapping[str, Mapping[str, Mapping[str, float]]],
    retriever_a: str,
    retriever_b: str,
    metrics=REPORT_METRICS,
    n_resamples: int = 10_000,
) -> dict[str, dict]:
    """Paired bootstrap of ``retriever_b`` (run B) against ``retriever_a`` (run A) per metric."""
    out = {}
    for m in metrics:
        a, b = per_query_a[retriever_a].get(m), per_query_b[retriever_b].get(m)
        if a is None or b is None:
            continue
        out[m] = paired_bootstrap(a, b, metric=m, n_resamples=n_resamples).to_dict()
    return out


def best_retriever(analysis: Mapping[str, Any], metric: str = PRIMARY) -> str | None:
    rets = analysis.get("retrievers", {})
    return max(rets, key=lambda k: rets[k].get(metric, -1)) if rets else None


def lakehouse_inputs(spark, lakehouse, dataset: str) -> tuple[dict, dict]:
    """(query_stats by query_norm, product category by product id) for ``dataset`` when the lakehouse
    has them; empty dicts otherwise (Home Depot: no search log, no categories)."""
    from pyspark.sql import functions as F

    from strata.catalogs import catalog_of

    catalog = catalog_of(dataset)
    stats: dict = {}
    cats: dict = {}
    try:
        if lakehouse.exists("query_stats"):
            df = (
                lakehouse.read(spark, "query_stats")
                .where(F.col("source") == catalog)
                .select("query_norm", "segment", "zero_click_rate")
                .toPandas()
            )
            stats = {r.query_norm: {"segment": r.segment, "zero_click_rate": r.zero_click_rate}
                     for r in df.itertuples()}
        if lakehouse.exists("products"):
            df = (
                lakehouse.read(spark, "products")
                .where((F.col("source") == catalog) & F.col("category_id").isNotNull())
                .select("product_id", "category_id")
                .toPandas()
            )
            cats = {str(r.product_id): str(r.category_id) for r in df.itertuples()}
    except Exception as e:  # noqa: BLE001 - optional inputs: the report says what it could not use
        log.warning("lakehouse query_stats/categories unavailable for %s: %s", dataset, e)
    return stats, cats
