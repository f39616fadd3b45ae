"""Slicing queries by intent so offline numbers say *where* a model got better or worse.

Slice families (each query gets one value per family; a family with a single value is dropped):

* ``popularity`` - head / torso / tail. From the search log's ``query_stats.segment`` when the query
  has stats; otherwise by the number of labelled products per query (tertiles: most-labelled third =
  head). On Home Depot (no log) label count is only a proxy for how common a query is.
* ``zero_click`` - ``zero-click-heavy`` when ``query_stats.zero_click_rate >= 0.5``, else ``clicked``
  (only where query_stats exists).
* ``length`` - ``1 token`` / ``2-3 tokens`` / ``4+ tokens`` (whitespace tokens of the query text).
* ``spelling`` - ``misspelled`` when a query token is not in the catalog's title vocabulary but is within
  edit distance ~2 of a vocabulary word; else ``clean``. Tokens shorter than 4 characters or containing
  a digit (sizes, model numbers) are never flagged. The distance test is the SymSpell delete
  neighbourhood of depth 1 on both sides (token minus one char == word minus one char, or one equals the
  other minus one char), which covers one substitution, insertion, deletion or adjacent transposition
  and some two-edit cases - cheap over a 50k-title vocabulary.
* ``origin`` - ``synthetic`` / ``real`` from a per-query flag (all real unless the dataset marks them).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

SLICE_ORDER = {
    "popularity": ["head", "torso", "tail"],
    "zero_click": ["zero-click-heavy", "clicked"],
    "length": ["1 token", "2-3 tokens", "4+ tokens"],
    "spelling": ["misspelled", "clean"],
    "origin": ["real", "synthetic"],
}
ZERO_CLICK_HEAVY = 0.5
_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def length_bucket(text: str) -> str:
    n = len(text.split())
    return "1 token" if n <= 1 else ("2-3 tokens" if n <= 3 else "4+ tokens")


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class SpellingVocab:
    """Vocabulary of catalog titles with a delete-1 index for near-miss lookups."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.words: set[str] = set()
        for t in texts:
            self.words.update(tokens(t))
        self._deletes: set[str] = set()
        for w in self.words:
            if len(w) >= 3:
                self._deletes.update(_deletes(w))

    def is_misspelled(self, token: str) -> bool:
        if len(token) < 4 or any(c.isdigit() for c in token) or token in self.words:
            return False
        if token in self._deletes:  # token = word minus one char (a deleted letter)
            return True
        dels = _deletes(token)
        # word = token minus one char (an inserted letter), or both minus one (substitution/transposition)
        return any(d in self.words or d in self._deletes for d in dels)

    def misspelled_tokens(self, text: str) -> list[str]:
        return [t for t in tokens(text) if self.is_misspelled(t)]


def label_count_segments(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, str]:
    """head / torso / tail by labels per query: cut at the 1/3 and 2/3 quantiles (ties go up)."""
    counts = {q: len(r) for q, r in qrels.items()}
    if not counts:
        return {}
    vals = np.array(list(counts.values()), dtype=float)
    lo, hi = np.quantile(vals, [1 / 3, 2 / 3])
    out = {}
    for q, c in counts.items():
        out[q] = "head" if c > hi else ("torso" if c > lo else "tail")
    # all-equal counts would put everyone in "tail": say nothing rather than something false
    return out if len(set(out.values())) > 1 else {}


def assign_slices(
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    vocab: SpellingVocab | None = None,
    query_stats: Mapping[str, Mapping] | None = None,
    synthetic: Mapping[str, bool] | None = None,
) -> dict[str, dict[str, str]]:
    """``{family: {qid: slice}}``. ``query_stats`` is keyed by query text (query_norm)."""
    stats = query_stats or {}
    fam: dict[str, dict[str, str]] = defaultdict(dict)
    by_labels = label_count_segments({q: qrels.get(q, {}) for q in queries})
    for qid, text in queries.items():
        st = stats.get(text)
        seg = (st or {}).get("segment")
        if seg in ("head", "torso", "tail"):
            fam["popularity"][qid] = seg
        elif qid in by_labels:
            fam["popularity"][qid] = by_labels[qid]
        zc = (st or {}).get("zero_click_rate")
        if zc is not None:
            fam["zero_click"][qid] = "zero-click-heavy" if zc >= ZERO_CLICK_HEAVY else "clicked"
        fam["length"][qid] = length_bucket(text)
        if vocab is not None:
            fam["spelling"][qid] = "misspelled" if vocab.misspelled_tokens(text) else "clean"
        fam["origin"][qid] = "synthetic" if (synthetic or {}).get(qid) else "real"
    return {f: d for f, d in fam.items() if d}


def popularity_source(queries: Mapping[str, str], query_stats: Mapping[str, Mapping] | None) -> str:
    if query_stats and any(query_stats.get(t, {}).get("segment") for t in queries.values()):
        return "search-log query_stats.segment"
    return "labels per query (tertiles; proxy, no search log)"


def slice_metrics(
    per_query: Mapping[str, Mapping[str, float]], slices: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, dict]]:
    """``{family: {slice: {"num_queries": n, metric: mean}}}`` from ``evaluate_run(per_query=True)``."""
    out: dict[str, dict[str, dict]] = {}
    for family, assign in slices.items():
        groups: dict[str, list[str]] = defaultdict(list)
        for qid, s in assign.items():
            groups[s].append(qid)
        order = SLICE_ORDER.get(family, []) + sorted(set(groups) - set(SLICE_ORDER.get(family, [])))
        fam_out: dict[str, dict] = {}
        for s in order:
            qids = [q for q in groups.get(s, []) if all(q in v for v in per_query.values())]
            if not qids:
                continue
            row: dict = {"num_queries": len(qids)}
            for m, vals in per_query.items():
                row[m] = float(np.mean([vals[q] for q in qids]))
            fam_out[s] = row
        out[family] = fam_out
    return out
