"""Every command builds its engines from the profile's `engine` section (and --set), not the embedded default."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from strata.cli import app


class _Captured(Exception):
    pass


@pytest.fixture
def captured(monkeypatch):
    seen = []

    class FakeEngines:
        def __init__(self, config):
            seen.append(config.with_env({}))
            raise _Captured  # stop before any engine starts

    monkeypatch.setattr("strata.engines.Engines", FakeEngines)
    return seen


REMOTE = ["--set", "engine.spark=connect", "--set", "engine.spark_remote=sc://127.0.0.1:15002",
          "--set", "engine.ray_address=auto"]


@pytest.mark.parametrize("argv", [
    ["features", "--lakehouse", "LH"],
    ["enrich-categories", "--lakehouse", "LH"],
    ["ingest", "--source", "homedepot", "--path", "P", "--lakehouse", "LH"],
    ["embed", "--lakehouse", "LH", "--catalog", "homedepot", "--out", "OUT"],
    ["export-beir", "--lakehouse", "LH", "--out", "OUT"],
    ["judge", "audit", "--lakehouse", "LH"],
])
def test_commands_use_the_profiles_engines(argv, captured, tmp_path):
    (tmp_path / "P").write_text("id,title\n")  # ingest checks its input exists before it starts anything
    argv = [a if a not in ("LH", "OUT", "P") else str(tmp_path / a) for a in argv]
    r = CliRunner().invoke(app, [*argv, *REMOTE])
    assert isinstance(r.exception, _Captured), r.output
    (cfg,) = captured
    assert (cfg.spark, cfg.spark_remote, cfg.ray_address) == ("connect", "sc://127.0.0.1:15002", "auto")
