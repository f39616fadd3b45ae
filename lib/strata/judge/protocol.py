"""The judge contract: a batch of (query, product) candidates in, one graded row per candidate out.

Every backend (distilled cross-encoder, vLLM, OpenAI-compatible endpoint, local transformers LM) takes the
same ``JudgeInput`` rows and returns the same ``JudgeOutput`` rows: a grade (2 exact, 1 partial /
substitute / complement, 0 irrelevant), a probability per grade, the judge id and version, and a per-row
``status`` so one bad row (empty text, an endpoint error) never fails the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from strata.text import clean_text, normalize_query

GRADES = (0, 1, 2)
GRADE_NAMES = {0: "irrelevant", 1: "partial", 2: "exact"}

# Per-row status. ``ok`` and ``truncated`` rows carry a grade; the error statuses carry none.
OK = "ok"
TRUNCATED = "truncated"  # scored, but the product text was cut to the length cap
EMPTY_QUERY = "error:empty_query"
EMPTY_PRODUCT = "error:empty_product"
BACKEND_ERROR = "error:backend"
INVALID_INPUT = "error:invalid_input"  # a row the validator itself could not read
SCORED = (OK, TRUNCATED)
# A failure of the judge itself (endpoint down, timeout, engine error, no grade token): no verdict, so the resume
# judges the pair again. The input errors above are verdicts on the text as given and are not retried.
RETRIED = (BACKEND_ERROR,)

MAX_QUERY_CHARS = 256
MAX_PRODUCT_CHARS = 1024


@dataclass(frozen=True)
class JudgeInput:
    query: str
    product_text: str
    category: str | None = None
    attributes: dict[str, str] | None = None


@dataclass
class JudgeOutput:
    grade: int | None
    probs: tuple[float, float, float] | None  # P(grade 0), P(1), P(2)
    judge_id: str
    judge_version: str
    status: str = OK
    error: str | None = None

    @property
    def scored(self) -> bool:
        return self.status in SCORED


@dataclass(frozen=True)
class PreparedInput:
    """An input after validation: cleaned, length-capped text and the status it will be reported with."""

    query: str
    product_text: str
    category: str
    attributes: dict[str, str] = field(default_factory=dict)
    status: str = OK
    error: str | None = None


@runtime_checkable
class Judge(Protocol):
    judge_id: str
    version: str

    def judge(self, batch: Sequence[JudgeInput]) -> list[JudgeOutput]:
        """One output per input, same order; never raises for a bad row (status says what went wrong)."""
        ...


def _cap(text: str, limit: int) -> tuple[str, bool]:
    return (text[:limit], True) if len(text) > limit else (text, False)


def prepare(row: JudgeInput, max_query_chars: int = MAX_QUERY_CHARS,
            max_product_chars: int = MAX_PRODUCT_CHARS) -> PreparedInput:
    """Clean, cap and validate one input. Empty query/product -> an error status instead of an exception."""
    query = clean_text(row.query if isinstance(row.query, str) else ("" if row.query is None else str(row.query)))
    product = clean_text(row.product_text if isinstance(row.product_text, str)
                         else ("" if row.product_text is None else str(row.product_text)))
    category = clean_text(row.category) if row.category else ""
    raw_attrs = row.attributes.items() if isinstance(row.attributes, Mapping) else ()
    attrs = {clean_text(k): clean_text(v) for k, v in raw_attrs if k and v}
    if not normalize_query(query):
        return PreparedInput("", product, category, attrs, EMPTY_QUERY, "query is empty")
    if not product:
        return PreparedInput(query, "", category, attrs, EMPTY_PRODUCT, "product text is empty")
    query, q_cut = _cap(query, max_query_chars)
    product, p_cut = _cap(product, max_product_chars)
    category, _ = _cap(category, 256)
    if q_cut or p_cut:
        what = " and ".join(w for w, c in (("query", q_cut), ("product text", p_cut)) if c)
        return PreparedInput(query, product, category, attrs, TRUNCATED, f"{what} truncated to the length cap")
    return PreparedInput(query, product, category, attrs)


def _prepare_or_error(row: JudgeInput) -> PreparedInput:
    try:
        return prepare(row)
    except Exception as e:  # noqa: BLE001 - one unreadable row must not fail the batch
        return PreparedInput("", "", "", {}, INVALID_INPUT, f"{type(e).__name__}: {e}"[:500])


def error_output(p: PreparedInput, judge_id: str, version: str) -> JudgeOutput:
    return JudgeOutput(None, None, judge_id, version, p.status, p.error)


def grade_from_probs(probs: np.ndarray) -> np.ndarray:
    """Argmax grade per row of an (n, 3) probability matrix."""
    return np.asarray(probs).argmax(axis=1).astype(np.int64)


def normalise_probs(scores: np.ndarray) -> np.ndarray:
    """Rows of non-negative scores (or probabilities that do not sum to 1) -> rows summing to 1."""
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    tot = s.sum(axis=1, keepdims=True)
    out = np.where(tot > 0, s / np.where(tot > 0, tot, 1.0), 1.0 / 3.0)
    return out


def _score_rows(score_fn, rows: list[PreparedInput]) -> np.ndarray:
    probs = np.asarray(score_fn(rows), dtype=np.float64)
    if probs.shape != (len(rows), 3):
        raise ValueError(f"scorer returned shape {probs.shape}, expected ({len(rows)}, 3)")
    return probs


def _score_isolating(score_fn, rows: list[PreparedInput]) -> list[np.ndarray | str]:
    """Probabilities per row, or the error text of the rows a failure could be pinned on.

    The whole batch is tried first (the normal, fast path). If the scorer raises, the batch is split in
    halves and each half retried, down to single rows: one poisonous row (text the tokenizer or an endpoint
    chokes on) costs about 2*log2(n) extra calls and fails alone; a scorer that is down fails every row.
    """
    try:
        probs = _score_rows(score_fn, rows)
        return [probs[k] for k in range(len(rows))]
    except Exception as e:  # noqa: BLE001 - a backend failure is reported per row
        if len(rows) == 1:
            return [f"{type(e).__name__}: {e}"[:500]]
    mid = len(rows) // 2
    return _score_isolating(score_fn, rows[:mid]) + _score_isolating(score_fn, rows[mid:])


def _check_probs(pr: np.ndarray) -> np.ndarray | str:
    """A row of grade scores -> a distribution over the three grades, or why it is not one."""
    if not np.all(np.isfinite(pr)):
        return "non-finite grade probabilities"
    if np.any(pr < 0) or pr.sum() <= 0:
        return "invalid grade probabilities (negative or all zero)"
    total = float(pr.sum())
    return pr if abs(total - 1.0) <= 1e-9 else pr / total


def judge_scored(judge: Judge, batch: Sequence[JudgeInput], score_fn) -> list[JudgeOutput]:
    """Shared driver: validate rows, score the valid ones with ``score_fn(list[PreparedInput]) -> (n,3)``.

    Never raises for a row: invalid input gets its ``error:*`` status; a failure of ``score_fn`` is narrowed
    down to the rows it fails on (see ``_score_isolating``), which get ``error:backend`` while the other rows
    are scored; a row whose scores are not a distribution over the grades is an ``error:backend`` row too.
    """
    prepared = [_prepare_or_error(r) for r in batch]
    out: list[JudgeOutput | None] = [None] * len(prepared)
    valid = [i for i, p in enumerate(prepared) if p.status in SCORED]
    for i, p in enumerate(prepared):
        if p.status not in SCORED:
            out[i] = error_output(p, judge.judge_id, judge.version)
    if valid:
        results = _score_isolating(score_fn, [prepared[i] for i in valid])
        for res, i in zip(results, valid):
            pr = res if isinstance(res, str) else _check_probs(res)
            if isinstance(pr, str):
                out[i] = JudgeOutput(None, None, judge.judge_id, judge.version, BACKEND_ERROR, pr)
                continue
            out[i] = JudgeOutput(int(pr.argmax()), (float(pr[0]), float(pr[1]), float(pr[2])),
                                 judge.judge_id, judge.version, prepared[i].status, prepared[i].error)
    return out  # type: ignore[return-value]
