"""The judging job: Ray Data actors -> MERGE into judgments; resume; SIGKILL mid-run then restart."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from strata.judge.backends import JudgeConfig
from strata.judge.job import missing_pairs, read_candidates, run_judging
from strata.tables import Lakehouse

from judge_toys import _PRODUCTS


def _candidates(n_queries: int) -> pd.DataFrame:
    rows = []
    for qi in range(n_queries):
        for pid, text in _PRODUCTS.items():
            rows.append({"source": "toy", "query": f"Query {qi} drill", "product_id": pid, "title": text})
    rows.append({"source": "toy", "query": "", "product_id": "p1", "title": _PRODUCTS["p1"]})  # error row
    return pd.DataFrame(rows)


def _write_delta(spark, path, frame):
    spark.createDataFrame(frame).write.format("delta").mode("overwrite").save(str(path))


def test_job_judges_once_and_resumes(engines, tiny_judge_dir, tmp_path):
    lh = Lakehouse(tmp_path / "lh")
    cands = read_candidates(_candidates(3))
    assert len(cands) == 31 and cands["query_norm"].iloc[0] == "query 0 drill"
    cfg = JudgeConfig(backend="distilled", model=str(tiny_judge_dir), batch_size=8, chunk_rows=16,
                      actor_cpus=0.5)
    first = run_judging(engines, lh, cands.iloc[:20], cfg, "run-1")
    assert first["judged"] == 20 and first["already_judged"] == 0
    second = run_judging(engines, lh, cands, cfg, "run-2")
    assert second["already_judged"] == 20 and second["judged"] == 11 and second["errors"] == 1
    j = lh.read_arrow("judgments").to_pandas()
    assert len(j) == 31 and not j.duplicated(["query_norm", "product_id", "judge_id"]).any()
    err = j[j["query_norm"] == ""]
    assert err["status"].iloc[0] == "error:empty_query" and err["grade"].isna().all()
    ok = j[j["status"] == "ok"]
    assert ok["grade"].between(0, 2).all() and ((ok[["p0", "p1", "p2"]].sum(axis=1) - 1).abs() < 1e-5).all()
    assert missing_pairs(lh, cands, first["judge_id"]).empty
    third = run_judging(engines, lh, cands, cfg, "run-3")
    assert third["judged"] == 0


def test_sigkill_midway_then_restart_gives_one_judgment_per_pair(engines, spark, tiny_judge_dir, tmp_path):
    lh = Lakehouse(tmp_path / "lh")
    cand_path = tmp_path / "candidates"
    _write_delta(spark, cand_path, _candidates(16))  # 161 pairs
    total = 161
    cmd = [sys.executable, "-c", "from strata.commands.judge import judge_app; judge_app()", "score",
           "--lakehouse", str(lh.root), "--candidates", str(cand_path), "--judge", str(tiny_judge_dir),
           "--batch-size", "8", "--chunk-rows", "8", "--actor-cpus", "0.5"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STRATA_RAY_ADDRESS": ""}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    first_commit = lh.path("judgments") / "_delta_log" / "00000000000000000001.json"
    deadline = time.monotonic() + 240
    try:
        while not first_commit.exists():  # the first chunk MERGE landed (version 1 = second chunk written)
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"judging subprocess ended or stalled before its second chunk (rc={proc.poll()})")
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    partial = lh.read_arrow("judgments").to_pandas()
    assert 0 < len(partial) < total, "the kill must land mid-run"
    assert not partial.duplicated(["query_norm", "product_id", "judge_id"]).any()

    cfg = JudgeConfig(backend="distilled", model=str(tiny_judge_dir), batch_size=8, chunk_rows=64)
    res = run_judging(engines, lh, read_candidates(cand_path), cfg, "restart")
    assert res["already_judged"] == len(partial) and res["judged"] == total - len(partial)
    j = lh.read_arrow("judgments").to_pandas()
    assert len(j) == total
    assert not j.duplicated(["query_norm", "product_id", "judge_id"]).any()
