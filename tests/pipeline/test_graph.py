"""The stage graph: well-formed, and the one source of what `strata run` and `strata refresh` execute."""

from __future__ import annotations

from importlib import import_module

import pytest

from strata.config import StrataConfig, load_config
from strata.pipeline.execute import select
from strata.pipeline.graph import GRAPH, STEPS, GraphError, active, plan
from strata.tables import TABLES

TAIL = ["gate", "promote", "index"]


def test_every_step_is_well_formed():
    seen: list[str] = []
    for s in GRAPH:
        module, name = s.fn.split(":")
        assert callable(getattr(import_module(module), name)), s.fn
        module, name = s.stage.split(":")
        assert callable(getattr(import_module(module), name)), s.stage
        assert set(s.sections) <= set(StrataConfig.model_fields), (s.name, s.sections)
        assert set(s.reads) | set(s.writes) <= set(TABLES), (s.name, set(s.reads) | set(s.writes) - set(TABLES))
        assert set(s.uses) <= set(seen), f"{s.name} uses a later step: {set(s.uses) - set(seen)}"
        seen.append(s.name)
    assert len(STEPS) == len(GRAPH)


def test_demo_and_local_plans():
    assert [s.name for s in active(load_config("demo"))] == [
        "ingest", "devset", "features", "judge-train", "mine", "train-stage1", "train-stage2", "evaluate", "report"]
    assert [s.name for s in active(load_config("local"))] == [
        "ingest", "devset", "enrich", "features", "judge-train", "mine", "train-stage1", "remine", "train-stage2",
        "evaluate", "report"]
    why = dict((s.name, w) for s, w in plan(load_config("demo")))
    assert why["enrich"] == "pipeline.enrich is off" and why["remine"] == "pipeline.remine is not set"
    assert why["gate"] == "refresh only"


@pytest.mark.parametrize("profile", ["demo", "local", "cluster"])
def test_refresh_runs_the_same_steps_as_run_plus_its_tail(profile):
    cfg = load_config(profile)
    assert [s.name for s in active(cfg, "refresh")] == [s.name for s in active(cfg, "run")] + TAIL


def test_turning_training_off_drops_its_steps_and_the_gate():
    cfg = load_config("demo", overrides=["pipeline.train=false"])
    names = [s.name for s in active(cfg, "refresh")]
    assert "train-stage1" not in names and "gate" not in names and "evaluate" in names and "index" in names


def test_only_selects_active_steps_and_explains_the_others():
    cfg = load_config("demo")
    assert [s.name for s in select(cfg, "run", ["mine", "ingest"])] == ["ingest", "mine"]
    with pytest.raises(GraphError, match="pipeline.enrich is off"):
        select(cfg, "run", ["enrich"])
    with pytest.raises(GraphError, match="unknown step 'bogus'"):
        select(cfg, "run", ["bogus"])


def test_ray_and_gpu_steps_run_on_the_gpu_cluster():
    assert STEPS["ingest"].cluster == "spark_cpu" and STEPS["judge-train"].cluster == "ray_gpu"
    assert STEPS["train-stage1"].task_key == "train_stage1"
