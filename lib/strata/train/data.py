"""Training data: ``training_examples`` -> one row per query (its products, grades, ids), then per-batch
sampling of the rows each stage trains on.

A query group keeps all of its graded products; each step samples from them with a RNG seeded by (seed,
epoch, step, worker), so a resumed run sees exactly the batches the killed run would have seen.
Stage 1 takes one top-grade positive and ``negatives`` others per query; Stage 2 takes up to
``rows_per_query`` rows with every grade the query has represented.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from strata.embed.stage import product_text
from strata.tables import Lakehouse
from strata.train.augment import misspell, write_synthetic_queries

GROUP_COLUMNS = ("catalog", "query", "query_norm", "texts", "pids", "grades", "synthetic")


def _catalog_products(lakehouse: Lakehouse, catalogs: list[str], used: set[tuple[str, str]]) -> pd.DataFrame:
    """source, product_id, title, brand of every product of ``catalogs`` (the synthetic-query pool), and the
    embedding text of the ``used`` ones only: streamed in batches, so no catalog's descriptions are ever held."""
    import pyarrow.compute as pc

    from strata.embed.scan import scan_batches

    parts = []
    for b in scan_batches(lakehouse, "products", ["source", "product_id", "title", "description", "brand"],
                          filter=pc.field("source").isin(catalogs)):
        d = b.to_pydict()
        d["text"] = [product_text(t, x) if (s, p) in used else None
                     for s, p, t, x in zip(d["source"], d["product_id"], d["title"], d["description"])]
        del d["description"]
        parts.append(pd.DataFrame(d))
    cols = ["source", "product_id", "title", "brand", "text"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def load_groups(lakehouse: Lakehouse, catalogs: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(query groups, products used) from ``training_examples`` joined with product text."""
    ex = lakehouse.read_arrow("training_examples", columns=["catalog", "query", "query_norm", "product_id", "grade",
                                                            "synthetic"]).to_pandas()
    if catalogs:
        ex = ex[ex["catalog"].isin(catalogs)]
    if ex.empty:
        raise ValueError(f"{lakehouse.root}: training_examples has no rows for {catalogs or 'any catalog'} "
                         "(run strata mine run)")
    prods = _catalog_products(lakehouse, sorted(set(ex["catalog"])), set(zip(ex["catalog"], ex["product_id"])))
    ex = ex.merge(prods[["source", "product_id", "text"]], left_on=["catalog", "product_id"],
                  right_on=["source", "product_id"], how="inner").drop(columns="source")
    # Integer product ids shared across the batch (so copies of one product are recognised in the loss).
    keys = ex["catalog"] + "\x00" + ex["product_id"]
    codes = {k: i for i, k in enumerate(sorted(keys.unique()))}
    ex = ex.assign(pid=keys.map(codes).astype(np.int64)).sort_values(["catalog", "query_norm", "product_id"])
    groups = ex.groupby(["catalog", "query_norm"], sort=True).agg(
        query=("query", "first"), texts=("text", list), pids=("pid", list), grades=("grade", list),
        synthetic=("synthetic", "any")).reset_index()
    return groups[list(GROUP_COLUMNS)], prods.assign(pid=(prods["source"] + "\x00" + prods["product_id"]).map(codes))


@dataclass(frozen=True)
class AugmentConfig:
    spelling_rate: float = 0.0  # share of real queries that get one misspelled copy
    synthetic_queries: int = 0  # products that get a synthetic query (grade-2 positive)
    generator: str = "template"  # template | smollm2
    seed: int = 13


def augment_groups(groups: pd.DataFrame, products: pd.DataFrame, cfg: AugmentConfig) -> tuple[pd.DataFrame, dict]:
    """Add misspelled copies and synthetic-query groups (``synthetic=True``); returns (groups, counts)."""
    rng = random.Random(cfg.seed)
    extra = []
    real = groups[~groups["synthetic"]]
    n_typo = int(round(cfg.spelling_rate * len(real)))
    if n_typo:
        pick = sorted(rng.sample(range(len(real)), min(n_typo, len(real))))
        for i in pick:
            g = real.iloc[i]
            q = misspell(g["query"], rng)
            if q != g["query"]:
                extra.append({**g.to_dict(), "query": q, "query_norm": q.lower(), "synthetic": True})
    n_syn = 0
    if cfg.synthetic_queries:
        used = products[products["pid"].notna()]
        pool = used if len(used) >= cfg.synthetic_queries else products
        pool = pool.sort_values(["source", "product_id"])
        idx = sorted(rng.sample(range(len(pool)), min(cfg.synthetic_queries, len(pool))))
        chosen = pool.iloc[idx]
        queries = write_synthetic_queries(list(chosen["title"].fillna("")), list(chosen["brand"]), rng, cfg.generator)
        for (_, p), q in zip(chosen.iterrows(), queries):
            if not q or pd.isna(p["pid"]):
                continue
            extra.append({"catalog": p["source"], "query": q, "query_norm": q, "texts": [p["text"]],
                          "pids": [int(p["pid"])], "grades": [2], "synthetic": True})
            n_syn += 1
    out = pd.concat([groups, pd.DataFrame(extra, columns=list(GROUP_COLUMNS))], ignore_index=True) if extra else groups
    return out, {"misspelled_copies": len(extra) - n_syn, "synthetic_queries": n_syn}


def stage_groups(groups: pd.DataFrame, stage: int) -> pd.DataFrame:
    """Stage 1 needs a positive per query; Stage 2 needs two grades to separate."""
    best = groups["grades"].map(max)
    if stage == 1:
        return groups[best >= 1].reset_index(drop=True)
    return groups[groups["grades"].map(lambda g: len(set(g)) >= 2)].reset_index(drop=True)


def _stage1_rows(gs: list[int], rng: random.Random, negatives: int, partials: str) -> list[int]:
    """One top-grade row, then ``negatives`` more. ``negative``: any lower-graded rows. ``graded``: one partial
    (when the top is exact) then irrelevant rows; ``ignore``: irrelevant rows first. Both fill up with what is
    left, so every mode sends 1 + ``negatives`` rows per query when the query has them."""
    rows = list(range(len(gs)))
    top = max(gs)
    take = [rng.choice([r for r in rows if gs[r] == top])]
    if partials == "negative":
        rest = [r for r in rows if gs[r] < top]
        return take + rng.sample(rest, min(negatives, len(rest)))
    want = 1 + negatives
    if partials == "graded" and top == 2:
        part = [r for r in rows if gs[r] == 1]
        take += [rng.choice(part)] if part and want > 1 else []
    zero = [r for r in rows if gs[r] == 0]
    take += rng.sample(zero, min(want - len(take), len(zero)))
    left = [r for r in rows if r not in take]
    return take + rng.sample(left, min(max(want - len(take), 0), len(left)))


def sample_batch(batch: dict[str, Any], stage: int, rng: random.Random, negatives: int = 3,
                 rows_per_query: int = 8, partials: str = "negative"
                 ) -> tuple[list[str], list[str], list[int], list[int], list[int]]:
    """A batch of query groups -> (queries, product texts, owner, grade, pid) for the loss."""
    queries, texts, owner, grade, pid = [], [], [], [], []
    for i, (q, ts, ps, gs) in enumerate(zip(batch["query"], batch["texts"], batch["pids"], batch["grades"])):
        ts, ps, gs = list(ts), [int(x) for x in ps], [int(x) for x in gs]
        rows = list(range(len(gs)))
        if stage == 1:
            take = _stage1_rows(gs, rng, negatives, partials)
        else:
            by_grade: dict[int, list[int]] = {}
            for r in rows:
                by_grade.setdefault(gs[r], []).append(r)
            take = [rng.choice(v) for _, v in sorted(by_grade.items(), reverse=True)]
            left = [r for r in rows if r not in take]
            take += rng.sample(left, min(max(rows_per_query - len(take), 0), len(left)))
        queries.append(str(q))
        for r in take:
            texts.append(ts[r])
            owner.append(len(queries) - 1)
            grade.append(gs[r])
            pid.append(ps[r])
    return queries, texts, owner, grade, pid
