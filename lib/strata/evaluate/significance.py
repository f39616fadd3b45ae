"""Is run B better than run A? Paired bootstrap over queries, and a promotion gate built on it.

Both runs are scored on the same queries, so the unit of resampling is the query: the per-query
differences ``d_q = B_q - A_q`` are resampled with replacement (``n_resamples`` times, seeded), giving a
percentile confidence interval for the mean difference and a one-sided p-value
``P(mean difference <= 0)`` under the bootstrap distribution (``(count + 1) / (n_resamples + 1)``, so it
is never exactly 0). Identical runs give p = 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
from pydantic import BaseModel, Field


@dataclass
class Comparison:
    metric: str
    num_queries: int
    mean_a: float
    mean_b: float
    diff: float  # mean_b - mean_a
    relative_lift: float  # diff / mean_a (inf when mean_a is 0 and diff > 0)
    ci_low: float
    ci_high: float
    p_value: float  # one-sided, H1: B > A
    confidence: float = 0.95
    n_resamples: int = 10_000

    def to_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    metric: str = "",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare per-query values ``a`` and ``b`` over the queries both have (a query missing in one run
    should already be 0 there: ``evaluate_run(per_query=True)`` guarantees that)."""
    qids = sorted(set(a) & set(b))
    if not qids:
        raise ValueError("the two runs share no query: nothing to compare")
    va = np.array([float(a[q]) for q in qids])
    vb = np.array([float(b[q]) for q in qids])
    d = vb - va
    n = len(d)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = d[idx].mean(axis=1)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    p = (int(np.sum(means <= 0.0)) + 1) / (n_resamples + 1)
    ma, mb = float(va.mean()), float(vb.mean())
    diff = mb - ma
    lift = diff / ma if ma else (float("inf") if diff > 0 else 0.0)
    return Comparison(metric, n, ma, mb, diff, lift, float(lo), float(hi), float(p), confidence, n_resamples)


class GateConfig(BaseModel):
    """Promotion gate: the challenger must beat the champion on ``metric`` by at least ``min_lift``
    (relative, 0.02 = +2 %) and significantly (one-sided paired bootstrap p < ``alpha``)."""

    metric: str = "ndcg@10"
    min_lift: float = Field(0.0, ge=0.0)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    n_resamples: int = Field(10_000, ge=100)
    seed: int = 0


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    comparison: Comparison | None = None

    def to_dict(self) -> dict:
        return {
            "promote": self.promote,
            "reasons": self.reasons,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }


def gate(
    champion: Mapping[str, float], challenger: Mapping[str, float], cfg: GateConfig | None = None
) -> GateDecision:
    """Decide whether ``challenger`` (per-query values of ``cfg.metric``) replaces ``champion``."""
    cfg = cfg or GateConfig()
    c = paired_bootstrap(
        champion, challenger, metric=cfg.metric, n_resamples=cfg.n_resamples, seed=cfg.seed
    )
    reasons = []
    if c.diff <= 0:
        reasons.append(f"{cfg.metric} did not improve ({c.mean_a:.4f} -> {c.mean_b:.4f})")
    if c.relative_lift < cfg.min_lift:
        reasons.append(f"relative lift {c.relative_lift:+.2%} is below the required {cfg.min_lift:+.2%}")
    if c.p_value >= cfg.alpha:
        reasons.append(
            f"not significant: one-sided paired bootstrap p={c.p_value:.4f} >= alpha={cfg.alpha} "
            f"(95% CI of the difference [{c.ci_low:+.4f}, {c.ci_high:+.4f}], {c.num_queries} queries)"
        )
    promote = not reasons
    if promote:
        reasons.append(
            f"{cfg.metric} {c.mean_a:.4f} -> {c.mean_b:.4f} ({c.relative_lift:+.2%}), "
            f"95% CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}], p={c.p_value:.4f} < {cfg.alpha}"
        )
    return GateDecision(promote, reasons, c)
