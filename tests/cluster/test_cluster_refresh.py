"""The nightly refresh on the cluster, two nights: ``strata submit refresh`` to the head's Ray Jobs server, the
lakehouse and the refresh state folder (state, registry, registered models, index) in a bucket of the S3 test
server: each night's driver works in a fresh local copy of the state folder (``strata.mirror``), so night 2 finds
night 1's champion and state only through the bucket. Night 2 comes with a new day of the Best Buy click log: it must find night 1's champion
and state, ingest only that day, and skip what did not change.

Opt-in (STRATA_CLUSTER_NIGHTS=1 make test-cluster): two whole refreshes take about 4 minutes on 2 cores, more
than CI's time allows beside the rest; the same two-night logic runs embedded in tests/ops/test_refresh.py.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ops.test_refresh import DAY1, DAY2, _log_slice

pytestmark = [pytest.mark.cluster, pytest.mark.integration,
              pytest.mark.skipif(os.environ.get("STRATA_CLUSTER_NIGHTS") != "1",
                                 reason="two cluster refreshes take ~4 min more: STRATA_CLUSTER_NIGHTS=1 runs them")]

STRATA = Path(sys.executable).parent / "strata"
NIGHT_TIMEOUT_S = 1200


def _night(n: int, work: Path, env: dict, server, args: list[str], tag: str) -> dict:
    job_id = f"strata-refresh-night{n}-{tag}"
    log, err = work / f"night{n}.log", work / f"night{n}.err"
    with open(log, "wb") as fo, open(err, "wb") as fe:
        rc = subprocess.run([str(STRATA), "submit", "refresh", "--target", server.address, "--no-pip",
                             "--submission-id", job_id, "--", *args], stdout=fo, stderr=fe,
                            stdin=subprocess.DEVNULL, env=env, cwd=str(work), timeout=NIGHT_TIMEOUT_S).returncode
    return {"rc": rc, "record": server.job(job_id), "log": log}


@pytest.fixture(scope="module")
def nights(data_root, s3_server, sail_server, ray_cluster, ray_job_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("cluster-nights")
    bb = work / "data" / "bestbuy-small"
    bb.mkdir(parents=True)
    (bb / "small_product_data.xml.zip").symlink_to(data_root / "bestbuy-small" / "small_product_data.xml.zip")
    _log_slice(data_root / "bestbuy-small" / "train.csv.gz", bb / "train.csv", DAY1)
    bucket = s3_server("cluster-nights")
    lake = bucket + "/lakehouse"
    cfg = {
        "data": {"root": str(work / "data"), "allowed_roots": [str(data_root)], "sources": [
            {"name": "homedepot", "path": str(data_root / "homedepot" / "train.csv.gz"), "limit": 1200},
            {"name": "google-taxonomy", "path": str(data_root / "google-taxonomy" / "taxonomy-with-ids.en-US.txt")},
            {"name": "bestbuy-small", "path": "bestbuy-small"}]},
        "lakehouse": {"root": lake},
        "embed": {"max_seq_length": 32, "cache_dir": str(work / "cache"), "actor_cpus": 0.5},
        "eval": {"dataset": "homedepot", "max_queries": 20, "rerank_k": 0},
        "judge": {"actor_cpus": 0.5},
        "judge_train": {"layers": 1, "max_pairs": 200, "max_seconds": 30, "stack_fraction": 0},
        "mine": {"max_queries": 20, "n_ann": 3, "rank_max": 20},
        "train": {"max_seq_length": 32, "cpus_per_worker": 0.5, "threads": 1, "spelling_rate": 0.0,
                  "stage1": {"max_steps": 2, "queries_per_batch": 8},
                  "stage2": {"max_steps": 1, "queries_per_batch": 8}},
        "pipeline": {"enrich": False},
        "refresh": {"gate": {"n_resamples": 200}},
    }
    path = work / "nights.yaml"
    path.write_text(yaml.safe_dump(cfg))
    state = bucket + "/state"
    args = ["--profile", "demo", "--config", str(path), "--out", state,
            "--set", "engine.spark=connect", "--set", f"engine.spark_remote={sail_server.url}"]
    env = {**os.environ, **ray_job_server.env, "HF_HUB_OFFLINE": "1"}
    for k in ("STRATA_SPARK", "STRATA_SPARK_REMOTE", "STRATA_RAY_ADDRESS", "RAY_ADDRESS"):
        env.pop(k, None)
    tag = secrets.token_hex(3)
    out = {"state": state, "lake": lake, "night1": _night(1, work, env, ray_job_server, args, tag)}
    if out["night1"]["rc"] == 0:
        out["day2_rows"] = _log_slice(data_root / "bestbuy-small" / "train.csv.gz", bb / f"clicks-{DAY2}.csv",
                                      (DAY2,))
        out["night2"] = _night(2, work, env, ray_job_server, args, tag)
    return out


def _tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def test_two_nights_of_refresh_on_the_cluster(nights):
    from strata.storage import location
    from strata.tables import Lakehouse

    for n in ("night1", "night2"):
        assert n in nights, "night 1 failed: " + _tail(nights["night1"]["log"])
        assert nights[n]["rc"] == 0 and nights[n]["record"]["status"] == "SUCCEEDED", _tail(nights[n]["log"])
    state = location(nights["state"])
    runs = sorted((state / "runs").iterdir(), key=str)
    assert len(runs) == 2
    first, second = (json.loads((r / "manifest.json").read_text()) for r in runs)
    assert first["champion_before"] == "1"  # night 1 bootstraps the off-the-shelf model as version 1
    # night 2 starts from the champion night 1 left (promoted or not), in the state night 1 wrote
    assert second["champion_before"] == first["champion_after"]
    events = [c for c in second["steps"]["ingest"]["counts"] if c["target_table"] == "search_events"]
    assert events and events[0]["accepted"] == nights["day2_rows"] > 0  # only the new day
    assert second["steps"]["features"]["ran"] and second["steps"]["evaluate"]["ran"]
    assert not second["steps"]["devset"]["ran"]  # the labels did not change: night 1's dev set is kept
    # the registry, read from a copy of the bucket's state folder: versions are named by their URI there
    from strata.mirror import Mirror
    from strata.pipeline.registry import Registry

    copy = Mirror(nights["state"])
    try:
        champ = Registry((copy.pull() / "mlruns").as_uri(), "strata-retriever").champion()
    finally:
        copy.close()
    assert champ.version == second["champion_after"] and champ.source.startswith(nights["state"] + "/models/")
    assert (location(champ.source) / "config.json").is_file() and (state / "index").is_dir()
    lh = Lakehouse(nights["lake"])
    days = lh.read_arrow("search_events", ["event_date"]).column("event_date").to_pylist()
    assert {str(d) for d in days} == {*DAY1, DAY2} and lh.remote
