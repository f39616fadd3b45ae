"""Adapter names (as used in config ``data.sources[].name``) -> loader functions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from strata.config_base import SplitConfig
from strata.sources.base import SourceData
from strata.sources.beir_adapter import load_beir
from strata.sources.bestbuy_catalog import load_bestbuy_catalog
from strata.sources.bestbuy_small import load_bestbuy_small
from strata.sources.esci import load_esci
from strata.sources.google_taxonomy import load_google_taxonomy
from strata.sources.homedepot import load_homedepot
from strata.sources.wands import load_wands

SOURCES: dict[str, Callable[..., SourceData]] = {
    "homedepot": load_homedepot,
    "bestbuy-small": load_bestbuy_small,
    "bestbuy-catalog": load_bestbuy_catalog,
    "google-taxonomy": load_google_taxonomy,
    "wands": load_wands,
    "esci": load_esci,
    "beir": load_beir,
}


def load_source(
    name: str, path: Path, *, limit: int | None = None, split: SplitConfig = SplitConfig()
) -> SourceData:
    """Run one adapter; the result is checked (table shapes, read = accepted + quarantined)."""
    if name == "table":  # not an adapter: read, checked and MERGEd by Spark (strata.ingest.table_source)
        raise KeyError("source 'table' needs a column mapping: configure it under data.sources with a `table:` "
                       "block (docs/tables.md), or run `strata ingest --source table --mapping FILE.yaml`")
    try:
        loader = SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCES)}") from None
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (got {limit})")
    return loader(Path(path), limit=limit, split=split).check()
