"""``strata refresh`` on a real-data slice: run, one new day of Best Buy log, run again (killed midway),
run again. Checks the incremental work, the lock, and that the champion only ever moves through the gate."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from strata.config import load_config
from strata.ops.refresh import RefreshLocked, refresh, refresh_lock
from strata.pipeline.registry import Registry

pytestmark = pytest.mark.integration

DAY1 = ("2011-08-11", "2011-08-12", "2011-08-13")
DAY2 = "2011-08-14"


def _log_slice(src: Path, out: Path, days) -> int:
    n = 0
    with gzip.open(src, "rt", encoding="utf-8", newline="") as f, open(out, "w", newline="", encoding="utf-8") as g:
        r = csv.reader(f)
        w = csv.writer(g)
        w.writerow(next(r))
        for row in r:
            if row[5][:10] in days:
                w.writerow(row)
                n += 1
    return n


@pytest.fixture(scope="module")
def setup(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("refresh")
    bb = root / "data" / "bestbuy-small"
    bb.mkdir(parents=True)
    (bb / "small_product_data.xml.zip").symlink_to(data_root / "bestbuy-small" / "small_product_data.xml.zip")
    n1 = _log_slice(data_root / "bestbuy-small" / "train.csv.gz", bb / "train.csv", DAY1)
    # The real Google taxonomy's Hardware and Home & Garden subtrees (with the version line): enough for Home
    # Depot's titles in 1,557 of the file's 5,595 paths, so enrichment embeds about a quarter as many.
    tax = root / "data" / "google-taxonomy" / "taxonomy.txt"
    tax.parent.mkdir(parents=True)
    lines = (data_root / "google-taxonomy" / "taxonomy-with-ids.en-US.txt").read_text(encoding="utf-8").splitlines()
    tax.write_text("\n".join(ln for ln in lines if ln.startswith("#") or ln.split(" - ", 1)[-1].startswith(
        ("Hardware", "Home & Garden"))) + "\n", encoding="utf-8")
    cfg = {
        "data": {"root": str(root / "data"), "sources": [
            {"name": "homedepot", "path": str(data_root / "homedepot" / "train.csv.gz"), "limit": 1200},
            {"name": "google-taxonomy", "path": "google-taxonomy/taxonomy.txt"},
            {"name": "bestbuy-small", "path": "bestbuy-small"}]},
        "lakehouse": {"root": str(root / "lakehouse")},
        "embed": {"max_seq_length": 32, "cache_dir": str(root / "cache"), "actor_cpus": 0.5},
        "eval": {"dataset": "homedepot", "max_queries": 40},
        "mine": {"max_queries": 60, "n_ann": 3, "rank_max": 20},
        "judge_train": {"layers": 1, "max_pairs": 600},
        "train": {"max_seq_length": 32, "cpus_per_worker": 0.5, "threads": 1, "spelling_rate": 0.0,
                  "stage1": {"max_steps": 2, "queries_per_batch": 8}, "stage2": {"max_steps": 1, "queries_per_batch": 8}},
        "pipeline": {"enrich": True},
        "refresh": {"gate": {"n_resamples": 2000}},
    }
    path = root / "refresh.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return {"root": root, "bb": bb, "config": path, "state": root / "state", "day1_rows": n1}


def _alias_history_ok(state: Path) -> tuple[Registry, list]:
    reg = Registry((state / "mlruns").as_uri(), "strata-retriever")
    versions = reg.versions()
    champ = reg.champion()
    tags = {v.version: v.tags for v in versions}
    # the champion is the bootstrap model or a version the gate promoted
    assert tags[champ.version].get("origin") == "bootstrap" or tags[champ.version].get("gate") == "promote"
    return reg, versions


def test_refresh_twice_then_killed_then_completes(engines, setup):
    cfg = load_config("demo", setup["config"])
    state = setup["state"]

    first = refresh(cfg, state, engines)
    # the same steps as `strata run`, then the tail
    from strata.pipeline.graph import active

    assert list(first.steps) == [s.name for s in active(cfg, "run")] + ["gate", "promote", "index"]
    assert all(first.steps[s]["ran"] for s in first.steps)
    assert first.champion_before == "1"  # bootstrap: the off-the-shelf model is version 1
    # Home Depot has no categories of its own: the features step gave its titles Google-taxonomy paths first;
    # Best Buy keeps its own taxonomy
    enriched = {c["source"]: c for c in first.steps["enrich"]["counts"]}
    assert set(enriched) == {"homedepot"}
    assert enriched["homedepot"]["read"] > 0 and enriched["homedepot"]["assigned"] > 0
    promotions = int(first.promoted)
    reg, versions = _alias_history_ok(state)
    assert [v.tags.get("origin") for v in versions] == ["bootstrap", "refresh"]

    # the lock keeps a second refresh out while one runs
    with refresh_lock(state):
        with pytest.raises(RefreshLocked):
            refresh(cfg, state, engines)

    # one new day of the click log arrives as a new file
    day2 = _log_slice(Path(cfg.data.sources[0].path).parents[1] / "bestbuy-small" / "train.csv.gz",
                      setup["bb"] / f"clicks-{DAY2}.csv", (DAY2,))
    assert day2 > 0

    # second run, killed after evaluation: the champion must not move
    champ_before = reg.champion().version
    env = {**os.environ, "STRATA_REFRESH_DIE_AT": "evaluate"}
    p = subprocess.run([sys.executable, "-m", "strata.cli", "refresh", "--out", str(state), "--config",
                        str(setup["config"])], env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 137, p.stderr[-3000:]
    assert reg.champion().version == champ_before
    killed = sorted((state / "runs").iterdir())[-1]
    steps = json.loads((killed / "manifest.json").read_text())["steps"]
    ev = [c for c in steps["ingest"]["counts"] if c["target_table"] == "search_events"]
    assert ev and ev[0]["accepted"] == day2  # only the new day's events were processed
    assert steps["features"]["ran"] and steps["mine"]["ran"] and steps["train-stage2"]["ran"]
    # the catalog and taxonomy did not change, so the enrichment step is skipped: no title is embedded again
    assert not steps["enrich"]["ran"]

    # third run: nothing new to ingest; features/mine/train are skipped; the killed run's candidate is gated
    third = refresh(cfg, state, engines)
    assert not any(third.steps[s]["ran"] for s in ("features", "judge-train", "mine", "train-stage1", "train-stage2"))
    assert third.steps["evaluate"]["ran"] and "decision" in third.steps["gate"]
    promotions += int(third.promoted)
    assert promotions <= 1
    _alias_history_ok(state)
    if not third.promoted:
        assert not third.steps["index"]["ran"]  # same champion, same catalog: the index is reused
    assert (state / "index" / "index.faiss").is_file()
