"""``refresh:`` in a profile: the model registry, the promotion gate and which steps the nightly runs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from strata.evaluate.significance import GateConfig


class RefreshConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = Field("strata-retriever", description="registered model name in the MLflow registry")
    registry_uri: str | None = Field(None, description="MLflow registry URI (None = file store in the state dir)")
    dataset: str | None = Field(None, description="eval dataset (labels source); None = eval.dataset")
    eval_max_queries: int | None = Field(None, ge=1, description="None = eval.max_queries")
    gate: GateConfig = Field(default_factory=GateConfig)
    enrich: bool = Field(True, description="assign Google-taxonomy categories to catalogs without any "
                         "(features step; as strata run's pipeline.enrich)")
    index_catalog: str | None = Field(None, description="catalog whose index is rebuilt; None = the eval dataset")
