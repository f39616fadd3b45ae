from __future__ import annotations

from pathlib import Path

import pytest

from strata.ingest.config import SourceConfig
from strata.sources.registry import SOURCES, load_source


def test_registry_covers_every_configurable_source():
    names = set(SourceConfig.model_fields["name"].annotation.__args__)
    assert set(SOURCES) == names - {"table"}  # `table` sources are Spark jobs (strata.ingest.table_source)
    with pytest.raises(KeyError, match="needs a column mapping"):
        load_source("table", Path("."))


def test_unknown_source_and_bad_limit(tmp_path):
    with pytest.raises(KeyError, match="unknown source 'nope'"):
        load_source("nope", tmp_path)
    with pytest.raises(ValueError, match="limit must be >= 1"):
        load_source("homedepot", tmp_path, limit=0)
