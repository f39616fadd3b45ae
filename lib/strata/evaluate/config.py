"""``eval:`` in a profile: which labelled dataset is the dev set and which retrievers are compared on it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from strata.config_base import StrictModel


class EvalConfig(StrictModel):
    """Which labelled dataset is the dev set and which retrievers are compared on it."""

    dataset: Literal["homedepot", "bestbuy-small", "wands", "esci", "beir"] = "homedepot"
    retrievers: list[str] = Field(default_factory=lambda: ["baseline", "bm25", "hybrid"])
    k: int = Field(100, ge=10, description="retrieval depth; must cover recall@100")
    max_queries: int | None = Field(None, ge=1, description="cap dev queries (demo); None = all")
    rerank_k: int = Field(0, ge=0, description="also evaluate rerank:MODEL, the trained model's top K re-ordered "
                          "by the run's judge (0 = off; needs pipeline.judge and pipeline.train)")
    rerank_alpha: float | None = Field(1.0, ge=0, description="fused = z(cosine) + alpha z(judge); None = judge only")
