"""Per-batch sampling of the rows each stage trains on, from the query groups ``strata.train.groups`` builds
(one row per query: its products' texts, ids and grades).

A query group keeps all of its graded products; each step samples from them with a RNG seeded by (seed,
epoch, step, worker), so a resumed run sees exactly the batches the killed run would have seen.
Stage 1 takes one top-grade positive and ``negatives`` others per query; Stage 2 takes up to
``rows_per_query`` rows with every grade the query has represented.
"""

from __future__ import annotations

import random
from typing import Any


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
