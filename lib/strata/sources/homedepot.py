"""Home Depot product search relevance (Kaggle): graded labels and the product titles they judge.

``train.csv`` rows are ``id, product_uid, product_title, search_term, relevance`` where relevance is the
mean of 3+ raters on 1 (irrelevant) .. 3 (exact). The mean is binned to our grades at 2.67 and 2 (see
``grade_of``), so "mostly exact" is exact and a split vote between partial and exact stays partial.
"""

from __future__ import annotations

import math
from pathlib import Path

from strata.config_base import SplitConfig
from strata.sources.base import Collector, SourceData, take, title_problem
from strata.sources.files import find_file, read_bytes, read_delimited
from strata.text import clean_text, normalize_query, split_of

SOURCE = "homedepot"
COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")
EXACT_AT, PARTIAL_AT = 2.67, 2.0


def grade_of(relevance: float) -> int:
    """Mean rating 1..3 -> 2 exact (>= 2.67), 1 partial (>= 2), 0 irrelevant."""
    if relevance >= EXACT_AT:
        return 2
    if relevance >= PARTIAL_AT:
        return 1
    return 0


def _relevance(text: str) -> tuple[float | None, str | None]:
    """The parsed relevance, or None and why it is unusable."""
    try:
        value = float(text)
    except ValueError:
        return None, f"relevance {text!r} is not a number"
    if not math.isfinite(value) or not 1.0 <= value <= 3.0:
        return None, f"relevance {text!r} is outside [1, 3]"
    return value, None


def load_homedepot(path: Path, *, limit: int | None = None, split: SplitConfig = SplitConfig()) -> SourceData:
    """``train.csv[.gz]`` (or a folder holding it) -> labels + products (namespace ``homedepot``).

    A row-level defect (encoding, NUL byte, field count, missing id / product_uid / title, a title longer
    than ``MAX_TITLE``) quarantines the row for both tables; a bad query or relevance only loses the label,
    the product is still a catalog entry.
    """
    file = find_file(Path(path), ["train.csv.gz", "train.csv"], "Home Depot train.csv")
    data, name = read_bytes(file)
    _, records = read_delimited(data, name, delimiter=",", required=COLUMNS)
    out = Collector(SOURCE, ("products", "labels"))
    for rec in take(records, limit):
        out.read("products", "labels")
        f = rec.fields
        problem = rec.problem
        if f is not None:
            missing = [c for c in ("id", "product_uid", "product_title") if not f[c].strip()]
            problem = (
                f"missing {', '.join(missing)}" if missing else title_problem(f["product_title"], "product_title")
            )
        if problem or f is None:
            out.reject("products", rec.location, rec.raw, problem or "unreadable")
            out.reject("labels", rec.location, rec.raw, problem or "unreadable")
            continue
        product_id = f["product_uid"].strip()
        out.accept(
            "products",
            rec.location,
            {
                "product_id": product_id,
                "source": SOURCE,
                "title": clean_text(f["product_title"]),
                "description": None,
                "brand": None,
                "category_id": None,
                "attributes": {},
            },
        )
        query = f["search_term"]
        query_norm = normalize_query(query)
        relevance, why = _relevance(f["relevance"].strip())
        if not query_norm:
            why = "missing search_term"
        if why:
            out.reject("labels", rec.location, rec.raw, why)
            continue
        out.accept(
            "labels",
            rec.location,
            {
                "source": SOURCE,
                "query": query,
                "query_norm": query_norm,
                "product_id": product_id,
                "grade": grade_of(relevance),
                "raw_label": f["relevance"].strip(),
                "split": split_of(query_norm, split.dev_fraction, split.salt),
            },
        )
    out.resolve_conflicts("labels", compare=("grade",))
    out.resolve_conflicts("products", compare=("title",))
    return out.result()
