"""`strata run --plan` prints the profile's graph; `--only` refuses a step the profile turns off."""

from __future__ import annotations

from typer.testing import CliRunner

from strata.cli import app


def test_plan_lists_every_step_and_why_one_is_off():
    r = CliRunner().invoke(app, ["run", "--profile", "demo", "--plan"])
    assert r.exit_code == 0, r.output
    for step in ("ingest", "judge-train", "train-stage2", "evaluate", "gate"):
        assert step in r.output
    assert "pipeline.enrich is off" in r.output and "refresh only" in r.output


def test_refresh_plan_runs_the_tail():
    r = CliRunner().invoke(app, ["refresh", "--profile", "local", "--out", "unused", "--plan"])
    assert r.exit_code == 0, r.output
    assert "refresh only" not in r.output and "index" in r.output


def test_only_an_off_step_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(app, ["run", "--profile", "demo", "--out", str(tmp_path / "r"), "--only", "enrich"])
    assert r.exit_code == 2 and "pipeline.enrich is off" in r.output
