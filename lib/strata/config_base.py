"""The bottom of the configuration: the strict model every section derives from, the config error, and the
two cross-cutting sections that bottom-layer code reads (the query split and the lakehouse location).

Each stage package owns its typed section (``strata.<stage>.config``); ``strata.config`` only composes them
and loads profiles. This module imports nothing from strata, so any layer may use it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ConfigError(ValueError):
    """A config value is missing or invalid; the message names the field and the value."""


class StrictModel(BaseModel):
    """Unknown keys are errors, assignments are validated, and a validation error never echoes a value (it
    may be a secret; ``load_config`` prints the offending value itself, redacted)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)


class SplitConfig(StrictModel):
    """Train/dev split by a stable hash of the normalised query (never by row)."""

    dev_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of queries in dev, in (0, 1)")
    salt: str = Field("strata-v1", description="hash salt; changing it reshuffles every query's split")


class LakehouseConfig(StrictModel):
    """Where tables live. ``root`` None means RUN_DIR/lakehouse."""

    root: str | None = None
    format: Literal["delta", "parquet"] = Field(
        "delta", description="parquet only for classic Spark without delta-spark"
    )
