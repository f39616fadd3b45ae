"""Per-batch sampling of the rows each stage trains on, from the query groups ``strata.train.groups`` builds
(one row per query: its products' texts, ids and grades).

A query group keeps all of its graded products; each step samples from them with a RNG seeded by (seed,
epoch, step, worker), so a resumed run sees exactly the batches the killed run would have seen.
Stage 1 takes ``positives`` top-grade rows (default one) and ``negatives`` others per query; Stage 2 takes
up to ``rows_per_query`` rows with every grade the query has represented, or, with ``judged_rows`` k, keeps k
of them for rows only the judge scored (the split bench_distill.py's ``--judged`` measured: grade-stratified,
the judge's rows outnumber a query's human ones and took 5-6 of 8 slots).

Which irrelevant rows Stage 1 takes: uniformly by default. Mining gives most queries many *easy* negatives
(random and cousin categories, mean cosine ~0.1 on Home Depot) and few hard ones (ANN neighbours, attribute
flips, human-judged irrelevant: 0.3-0.55), so a uniform draw spends most negative slots on rows the in-batch
negatives already cover. ``hard_temperature`` T draws them without replacement with weight exp(score / T) on
the mining score (the query-product cosine of the mining model; rows without one count as 0), which favours
the hard rows but still shows the easy ones now and then.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any


def _draw(rows: list[int], k: int, rng: random.Random, scores: Sequence[float] | None,
          hard_temperature: float | None) -> list[int]:
    """``k`` of ``rows`` without replacement: uniform, or with weight exp(score / T): the k largest
    score / T + Gumbel noise (the Efraimidis-Spirakis draw in log space, so no score or T can overflow)."""
    k = max(0, min(k, len(rows)))
    if hard_temperature is None or scores is None or k <= 0:
        return rng.sample(rows, k)
    keys = [(float(scores[r]) / hard_temperature - math.log(max(-math.log(1.0 - rng.random()), 1e-300)), r)
            for r in rows]
    return [r for _, r in sorted(keys, reverse=True)[:k]]


def _stage1_rows(gs: list[int], rng: random.Random, negatives: int, partials: str,
                 scores: Sequence[float] | None = None, hard_temperature: float | None = None,
                 positives: int = 1) -> list[int]:
    """Up to ``positives`` top-grade rows, then ``negatives`` more. ``negative``: any lower-graded rows.
    ``graded``: one partial (when the top is exact) then irrelevant rows; ``ignore``: irrelevant rows first.
    Both fill up with what is left, so every mode sends (top rows taken) + ``negatives`` rows per query when
    the query has them. Lower-graded rows are drawn by ``_draw`` (uniform unless ``hard_temperature``)."""
    rows = list(range(len(gs)))
    top = max(gs)
    tops = [r for r in rows if gs[r] == top]
    # positives=1 keeps the single rng.choice draw, so earlier runs' batches are reproduced exactly
    take = [rng.choice(tops)] if positives == 1 else rng.sample(tops, min(positives, len(tops)))
    if partials == "negative":
        rest = [r for r in rows if gs[r] < top]
        return take + _draw(rest, negatives, rng, scores, hard_temperature)
    want = len(take) + negatives
    if partials == "graded" and top == 2:
        part = [r for r in rows if gs[r] == 1]
        take += [rng.choice(part)] if part and want > len(take) else []
    zero = [r for r in rows if gs[r] == 0]
    take += _draw(zero, want - len(take), rng, scores, hard_temperature)
    left = [r for r in rows if r not in take]
    return take + rng.sample(left, min(max(want - len(take), 0), len(left)))


def judged_split(human: list[int], judged: list[int], rows: int, k: int, rng: random.Random) -> list[int]:
    """``rows`` of a query's rows: ``k`` slots kept for ``judged`` (judge-scored) rows as far as there are
    that many, the rest ``human`` rows, then judged rows for any slots still free (Stage 2's ``judged_rows``,
    bench_distill.py's ``--judged``: one rule, so the bench and the library draw alike)."""
    take = rng.sample(human, min(rows - min(k, len(judged)), len(human)))
    return take + rng.sample(judged, min(rows - len(take), len(judged)))


def sample_batch(batch: dict[str, Any], stage: int, rng: random.Random, negatives: int = 3,
                 rows_per_query: int = 8, partials: str = "negative", hard_temperature: float | None = None,
                 positives: int = 1, with_teacher: bool = False, judged_rows: int | None = None) -> tuple[list, ...]:
    """A batch of query groups -> (queries, product texts, owner, grade, pid) for the loss, plus the rows'
    teacher scores and judged flags (the groups' ``teachers`` and ``judged``) when ``with_teacher`` (Stage 2's
    judge distillation). The draw is the same either way.

    ``hard_temperature`` needs the groups' ``scores`` column (Stage 1 only). ``judged_rows`` (Stage 2 only,
    needs ``with_teacher``): of ``rows_per_query``, slots kept for judge-scored rows as far as the query has
    them; the rest go to its other (human-labelled) rows, and any slots still free to judge rows."""
    if with_teacher and not {"teachers", "judged"} <= set(batch):
        raise ValueError("with_teacher needs the groups' teachers and judged columns (groups built before they "
                         "existed: rebuild them with build_groups)")
    if judged_rows is not None and not (with_teacher and 0 <= judged_rows <= rows_per_query):
        raise ValueError(f"judged_rows needs with_teacher and 0 <= judged_rows <= rows_per_query "
                         f"({rows_per_query}); got {judged_rows}")
    if positives < 1:
        raise ValueError(f"positives must be >= 1 (got {positives})")
    if hard_temperature is not None and "scores" not in batch:
        raise ValueError("hard_temperature needs the groups' scores column (groups built before it existed: "
                         "rebuild them with build_groups)")
    queries, texts, owner, grade, pid, teacher, judged = [], [], [], [], [], [], []
    all_scores = batch["scores"] if hard_temperature is not None else [None] * len(batch["query"])
    n = len(batch["query"])
    all_teachers = zip(batch["teachers"], batch["judged"]) if with_teacher else [(None, None)] * n
    for i, (q, ts, ps, gs, sc, (tv, jv)) in enumerate(zip(batch["query"], batch["texts"], batch["pids"],
                                                          batch["grades"], all_scores, all_teachers)):
        ts, ps, gs = list(ts), [int(x) for x in ps], [int(x) for x in gs]
        rows = list(range(len(gs)))
        if stage == 1:
            take = _stage1_rows(gs, rng, negatives, partials, None if sc is None else list(sc), hard_temperature,
                                positives)
        elif judged_rows is not None:
            take = judged_split([r for r in rows if not jv[r]], [r for r in rows if jv[r]], rows_per_query,
                                judged_rows, rng)
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
            if with_teacher:
                teacher.append(float(tv[r]))
                judged.append(bool(jv[r]))
    if with_teacher:
        return queries, texts, owner, grade, pid, teacher, judged
    return queries, texts, owner, grade, pid
