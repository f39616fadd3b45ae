"""``strata run`` into a run folder on an object store (a real S3-compatible server, ``s3_server``): two steps in
two calls, as a scheduler's tasks on two nodes run them, each through a local copy of its own."""

from __future__ import annotations

import json

import pytest
import yaml

from strata.config import load_config
from strata.mirror import _files
from strata.pipeline.run import run_pipeline
from strata.storage import location

pytestmark = pytest.mark.integration


def test_steps_on_two_nodes_share_a_run_folder_in_a_bucket(engines, data_root, s3_server, tmp_path):
    cfg_file = tmp_path / "small.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "data": {"root": str(data_root), "sources": [
            {"name": "homedepot", "path": "homedepot/train.csv.gz", "limit": 600}]},
        "eval": {"max_queries": 10},
        "pipeline": {"enrich": False, "features": False, "judge": False, "mine": False, "train": False}}))
    cfg = load_config("demo", cfg_file)
    run = s3_server("strata-runs") + "/nightly"

    first = run_pipeline(cfg, run, engines=engines, only=["ingest"])
    second = run_pipeline(cfg, run, engines=engines, only=["devset"])  # reads ingest's outputs from the bucket

    assert str(first.run_dir) == run and str(second.manifest_path) == f"{run}/manifest-devset.json"
    keys = _files(location(run))
    assert {"state.json", "manifest-ingest.json", "manifest-devset.json"} <= set(keys)
    assert any(k.startswith("lakehouse/products/_delta_log/") for k in keys)  # the tables, in the bucket
    assert any(k.startswith("beir/homedepot-dev/") for k in keys), sorted(keys)  # the dev set's files, pushed
    state = json.loads((location(run) / "state.json").read_text())
    assert set(state["steps"]) == {"ingest", "devset"}
    assert state["steps"]["devset"]["outputs"]["dir"].startswith("${root}/")  # no node's local path
    manifest = json.loads((location(run) / "manifest-devset.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["run_id"] == "nightly"
    assert manifest["config"]["lakehouse"]["root"] == f"{run}/lakehouse"
    assert manifest["config"]["train"]["storage"] == f"{run}/_train"
