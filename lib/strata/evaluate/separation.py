"""Score separation (Mine and Refine): how well a bi-encoder's cosine similarity separates grades.

On labelled (query, product) pairs: the similarity distribution per grade, the pairwise AUC between
grades (P(sim of a higher-grade pair > sim of a lower-grade pair), ties count 1/2), and a recommended
"relevant enough" threshold: the similarity maximising Youden's J (recall of grade >= 1 pairs minus the
share of grade-0 pairs let through), reported with its precision and recall. (Max-F1 is not used: with
~85 % of labelled pairs relevant, as on Home Depot, it degenerates to "accept everything".) Only the labelled pairs are encoded (a few thousand texts), never the corpus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def auc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    """Mann-Whitney AUC: P(pos > neg) + 0.5 P(pos == neg); None if either side is empty."""
    p, n = np.asarray(pos, float), np.asarray(neg, float)
    if not len(p) or not len(n):
        return None
    allv = np.concatenate([p, n])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sv = allv[order]
    i = 0
    while i < len(sv):  # average ranks for ties
        j = i
        while j + 1 < len(sv) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r_pos = ranks[: len(p)].sum()
    return float((r_pos - len(p) * (len(p) + 1) / 2) / (len(p) * len(n)))


def best_threshold(sims: np.ndarray, relevant: np.ndarray, criterion: str = "youden") -> dict | None:
    """Threshold t (predict relevant when sim >= t) maximising Youden's J (or F1); ties -> higher t."""
    if not relevant.any() or relevant.all():
        return None
    order = np.argsort(-sims, kind="mergesort")
    s, r = sims[order], relevant[order].astype(float)
    tp = np.cumsum(r)
    k = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # only cut between distinct similarities
    prec = tp / k
    rec = tp / r.sum()
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    fpr = (k - tp) / max(float((1 - r).sum()), 1.0)
    crit = (rec - fpr) if criterion == "youden" else f1
    crit = np.where(last, crit, -np.inf)
    i = int(np.argmax(crit))
    return {
        "threshold": float(s[i]),
        "precision": float(prec[i]),
        "recall": float(rec[i]),
        "f1": float(f1[i]),
        "false_positive_rate": float(fpr[i]),
        "criterion": criterion,
        "positive": "grade >= 1",
    }


def separation_from_sims(sims_by_grade: Mapping[int, Sequence[float]]) -> dict:
    grades = sorted(int(g) for g, v in sims_by_grade.items() if len(v))
    out: dict = {"grades": {}, "auc": {}, "threshold": None}
    for g in grades:
        v = np.asarray(sims_by_grade[g], float)
        out["grades"][str(g)] = {
            "n": int(len(v)),
            "mean": float(v.mean()),
            "median": float(np.median(v)),
            "p10": float(np.quantile(v, 0.1)),
            "p90": float(np.quantile(v, 0.9)),
        }
    for i, lo in enumerate(grades):
        for hi in grades[i + 1 :]:
            out["auc"][f"{hi}>{lo}"] = auc(sims_by_grade[hi], sims_by_grade[lo])
    sims = np.concatenate([np.asarray(sims_by_grade[g], float) for g in grades]) if grades else np.array([])
    rel = np.concatenate([np.full(len(sims_by_grade[g]), g >= 1) for g in grades]) if grades else np.array([])
    if len(sims):
        out["threshold"] = best_threshold(sims, rel.astype(bool))
        pos = [x for g in grades if g >= 1 for x in sims_by_grade[g]]
        neg = [x for g in grades if g < 1 for x in sims_by_grade[g]]
        out["auc"]["relevant>irrelevant"] = auc(pos, neg)
    return out


def labelled_pair_sims(
    qrels: Mapping[str, Mapping[str, int]],
    queries: Mapping[str, str],
    doc_text: Mapping[str, str],
    encode_fn,
    max_pairs: int | None = 20_000,
) -> dict[int, list[float]]:
    """Cosine similarity of every labelled pair; ``encode_fn(texts) -> L2-normalised matrix``."""
    pairs = [(q, d, int(g)) for q in sorted(qrels) if q in queries for d, g in sorted(qrels[q].items())
             if d in doc_text]
    if max_pairs is not None and len(pairs) > max_pairs:
        pairs = pairs[:max_pairs]
    qids = sorted({q for q, _, _ in pairs})
    dids = sorted({d for _, d, _ in pairs})
    if not pairs:
        return {}
    qv = np.asarray(encode_fn([queries[q] for q in qids]), dtype=np.float32)
    dv = np.asarray(encode_fn([doc_text[d] for d in dids]), dtype=np.float32)
    qv /= np.maximum(np.linalg.norm(qv, axis=1, keepdims=True), 1e-12)
    dv /= np.maximum(np.linalg.norm(dv, axis=1, keepdims=True), 1e-12)
    qi = {q: i for i, q in enumerate(qids)}
    di = {d: i for i, d in enumerate(dids)}
    out: dict[int, list[float]] = {}
    for q, d, g in pairs:
        out.setdefault(g, []).append(float(qv[qi[q]] @ dv[di[d]]))
    return out


def pair_sims_from_retriever(retriever, qrels: Mapping[str, Mapping[str, int]]) -> dict[int, list[float]]:
    """Labelled-pair similarities from a searched ``DenseRetriever``: query vectors kept by ``search``,
    product vectors read back from its FAISS index (``reconstruct``); nothing is embedded again.
    Pairs whose product is not in the index are skipped."""
    qv = retriever.query_vectors
    index = retriever._index
    row_of = {d: i for i, d in enumerate(retriever._doc_ids)}
    out: dict[int, list[float]] = {}
    for q in sorted(qrels):
        if q not in qv:
            continue
        v = np.asarray(qv[q], dtype=np.float32)
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        for d, g in sorted(qrels[q].items()):
            r = row_of.get(d)
            if r is None:
                continue
            dv = np.asarray(index.reconstruct(int(r)), dtype=np.float32)
            dv = dv / max(float(np.linalg.norm(dv)), 1e-12)
            out.setdefault(int(g), []).append(float(v @ dv))
    return out
