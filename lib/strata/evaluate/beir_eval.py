"""Full-corpus evaluation of several retrievers on one BEIR dataset.

Every retriever searches the whole corpus, so dense and lexical numbers are comparable with each other
and with published BEIR results; ``rerank:BASE`` (``strata.evaluate.rerank``) is the one two-stage retriever:
BASE's full-corpus run with its top K re-ordered by the judge. Runs can be written as TREC
files so another toolkit (trec_eval, pytrec_eval, ranx) can re-score exactly what was scored here.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from strata.embed.config import EmbedConfig
from strata.evaluate.fusion import hybrid_components, rrf
from strata.evaluate.metrics import DEFAULT_METRICS, evaluate_run, write_trec_run
from strata.evaluate.rerank import RerankConfig, judge_scorer, rerank_base, rerank_run
from strata.evaluate.retrievers import make_retriever
from strata.sources.beir import BeirDataset
from strata.text import stable_hash

log = logging.getLogger(__name__)

MIN_DEPTH = 100  # recall@100 needs at least 100 results per query


def sample_queries(queries: dict[str, str], max_queries: int | None) -> dict[str, str]:
    """At most ``max_queries``, chosen by a stable hash of the query id (not the first N ids, which
    can be one block of similar queries), returned in id order."""
    qids = sorted(queries)
    if max_queries is not None and len(qids) > max_queries:
        by_hash = sorted(qids, key=lambda q: (stable_hash(q, nbytes=20), q))  # the whole sha1, unsalted
        qids = sorted(by_hash[:max_queries])
    return {q: queries[q] for q in qids}


def run_file_name(retriever: str) -> str:
    """A file-name- and TREC-tag-safe version of a retriever name (which may be a model path)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", retriever.strip("/")) or "run"


def evaluate_beir(
    ds: BeirDataset,
    retrievers: list[str],
    *,
    k: int,
    embed_cfg: EmbedConfig,
    engines: Any = None,
    max_queries: int | None = None,
    runs_out: Path | None = None,
    pair_sims: dict | None = None,
    rerank: RerankConfig | None = None,
) -> dict:
    """Index ``ds.corpus`` (title + text) with each retriever, search the judged queries, score them.

    ``pair_sims``: if a dict is given, it receives, per dense retriever, the cosine similarity of every
    labelled (query, product) pair by grade, from the vectors already computed (score separation)."""
    depth = max(int(k), MIN_DEPTH)
    if depth != k:
        log.info("retrieval depth raised from %d to %d to cover recall@%d", k, depth, MIN_DEPTH)
    doc_ids = list(ds.corpus)
    doc_texts = [ds.doc_text(d) for d in doc_ids]
    queries = sample_queries(ds.judged_queries(), max_queries)
    qrels = {q: ds.qrels[q] for q in queries}
    out: dict[str, Any] = {
        "dataset": ds.name,
        "split": ds.split,
        "num_docs": len(doc_ids),
        "retrievers": {},
    }
    computed: dict[str, tuple[dict, str, dict]] = {}  # name -> (run, model_id, seconds)
    if any(rerank_base(r) for r in retrievers) and rerank is None:
        raise ValueError("a rerank:BASE retriever needs a judge (RerankConfig; strata eval --judge)")
    scorer: list = []  # the judge, loaded on first use

    def _search(rname: str) -> tuple[dict, str, dict]:
        if rname not in computed:
            parts, base = hybrid_components(rname), rerank_base(rname)
            if base:
                base_run, base_id, _ = _search(base)
                if not scorer:
                    scorer.append(judge_scorer(rerank))
                t0 = time.perf_counter()
                run = rerank_run(base_run, queries, ds.doc_text, scorer[0], rerank.k, rerank.alpha)
                secs = {"rerank": round(time.perf_counter() - t0, 3)}
                mid = f"rerank({base_id}, {scorer[0].judge_id}, k={rerank.k}, alpha={rerank.alpha})"
                computed[rname] = (run, mid, secs)
            elif parts:  # reciprocal-rank fusion of component runs (each indexed once at most)
                t0 = time.perf_counter()
                fused = rrf([_search(p)[0] for p in parts], depth=depth)
                secs = {"fuse": round(time.perf_counter() - t0, 3)}
                computed[rname] = (fused, "rrf(" + "+".join(_search(p)[1] for p in parts) + ")", secs)
            else:
                retriever = make_retriever(rname, embed_cfg, engines)
                t0 = time.perf_counter()
                retriever.index(doc_ids, doc_texts)
                t1 = time.perf_counter()
                run = retriever.search(queries, depth)
                t2 = time.perf_counter()
                secs = {"index": round(t1 - t0, 3), "search": round(t2 - t1, 3)}
                if pair_sims is not None and getattr(retriever, "query_vectors", None) is not None:
                    from strata.evaluate.separation import pair_sims_from_retriever

                    pair_sims[rname] = pair_sims_from_retriever(retriever, qrels)
                computed[rname] = (run, getattr(retriever, "model_id", rname), secs)
        return computed[rname]

    for name in retrievers:
        run, mid, secs = _search(name)
        scores = evaluate_run(qrels, run, DEFAULT_METRICS)
        scores["model_id"] = mid
        scores["seconds"] = secs
        out["retrievers"][name] = scores
        if runs_out is not None:
            tag = run_file_name(name)
            write_trec_run(run, Path(runs_out) / f"{tag}.run", tag=tag)
        log.info(
            "%s on %s/%s: %s",
            name,
            ds.name,
            ds.split,
            ", ".join(f"{m}={scores[m]:.4f}" for m in DEFAULT_METRICS),
        )
    return out
