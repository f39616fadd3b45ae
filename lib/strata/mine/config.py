"""Mining knobs (``mine:`` in a profile): how many candidates of each kind per query, the ANN rank window,
the margin rule, the judge guard and per-query caps."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

# Route precedence when two routes propose the same product for a query: the harder route keeps it.
ROUTES = ("ann", "attribute_flip", "taxonomy_sibling", "cousin", "random")


class MineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("baseline", description="the encoder whose neighbours are mined ('baseline' or a dir)")
    catalogs: list[str] = Field(default_factory=list, description="catalog namespaces to mine ([] = all with seeds)")
    n_sibling: int = Field(2, ge=0, description="products from sibling categories of a positive's category")
    n_attribute: int = Field(2, ge=0, description="same category, another value of an attribute the query names")
    n_cousin: int = Field(1, ge=0, description="products from cousin categories")
    n_random: int = Field(2, ge=0, description="products from categories none of the positives is in")
    n_ann: int = Field(5, ge=0, description="nearest neighbours taken from the rank window")
    rank_min: int = Field(5, ge=0, description="ANN ranks [rank_min, rank_max) are candidates (0 = best)")
    rank_max: int = Field(50, ge=1)
    index: str = Field("auto", description="auto | flat | hnsw | ivfpq (auto: exact below 200k products, else "
                       "HNSW; ivfpq: the catalog's vectors stay on disk and the index holds pq_m bytes per product)")
    ivf_nlist: int | None = Field(None, ge=1, description="ivfpq: inverted lists (None: ~4 sqrt(products))")
    pq_m: int = Field(48, ge=1, description="ivfpq: bytes per product code (the largest divisor of dim <= this)")
    nprobe: int = Field(32, ge=1, description="ivfpq: lists searched per query (more: better recall, slower)")
    ivf_train_rows: int = Field(100_000, ge=1, description="ivfpq: product vectors sampled to train the index")
    ivf_refine: int = Field(4, ge=1, description="ivfpq: re-rank the top ivf_refine x rank_max PQ hits with the "
                            "exact vectors (1 = PQ order)")
    recall_sample: int = Field(200, ge=0, description="queries whose ANN recall@rank_max is checked vs exact")
    absolute_margin: float | None = Field(0.05, description="without a judge: drop a negative scoring above "
                                          "positive_score - absolute_margin")
    relative_margin: float | None = Field(None, description="without a judge: drop a negative scoring above "
                                          "positive_score * (1 - relative_margin)")
    use_judge: bool = Field(True, description="re-annotate mined candidates with the configured judge")
    engagement_exact_clicks: int = Field(2, ge=1, description="clicks for an engagement pair to count as exact "
                                         "(fewer: partial)")
    max_per_query: int = Field(40, ge=1, description="cap on examples per query (human/engagement kept first)")
    max_queries: int | None = Field(None, ge=1, description="mine at most N seed queries per catalog "
                                    "(stable hash order); None = all")
    bucket_queries: int = Field(200_000, ge=1, description="seed queries per mining pass: the driver holds one "
                                "(catalog, hash bucket of queries) at a time, its seeds and candidates")
    seed: int = 13

    @model_validator(mode="after")
    def _window(self) -> "MineConfig":
        if self.rank_max <= self.rank_min:
            raise ValueError(f"rank_max ({self.rank_max}) must exceed rank_min ({self.rank_min})")
        if self.index not in ("auto", "flat", "hnsw", "ivfpq"):
            raise ValueError(f"index must be auto, flat, hnsw or ivfpq (got {self.index!r})")
        return self


def _overlay_fields() -> dict:
    fields = {}
    for name, info in MineConfig.model_fields.items():
        fields[name] = (info.annotation | None, Field(None, description=info.description))
    return fields


# A second mining pass's changes to ``mine`` (``pipeline.remine``): every mining knob, all optional (unset: as
# in ``mine``). Typed, so a misspelt knob fails at load time, naming the field. ``model`` and ``use_judge`` are
# refused by ``StrataConfig`` with the reason: the re-mining pass always mines the Stage 1 model's neighbours,
# every candidate judged.
MineOverlay = create_model("MineOverlay", __config__=ConfigDict(extra="forbid"), **_overlay_fields())


def apply_overlay(base: MineConfig, overlay: BaseModel | None, **fixed: object) -> MineConfig:
    """``base`` with the overlay's set knobs and ``fixed`` values laid over it, validated as one MineConfig."""
    over = overlay.model_dump(exclude_unset=True) if overlay is not None else {}
    return MineConfig.model_validate({**base.model_dump(), **over, **fixed})
