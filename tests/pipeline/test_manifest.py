import json

import pytest

from strata.config import load_config
from strata.pipeline.manifest import Manifest, git_commit


def test_stage_timing_recorded_even_on_failure(tmp_path):
    m = Manifest(run_id="r1", config=load_config("demo"))
    with m.stage("ok"):
        pass
    with pytest.raises(RuntimeError):
        with m.stage("boom"):
            raise RuntimeError("x")
    assert set(m.timings) == {"ok", "boom"}
    path = m.write(tmp_path / "manifest.json", status="failed")
    doc = json.loads(path.read_text())
    assert doc["status"] == "failed" and doc["run_id"] == "r1"
    assert doc["config"]["profile"] == "demo"
    assert doc["packages"]["pyspark"] == "4.2.0"


def test_git_commit_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) == {"commit": None, "dirty": None}
