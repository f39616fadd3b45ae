"""Steps of the graph sent to the cluster as Ray jobs, the way a scheduler with a Ray Jobs operator runs them:
``strata submit STEP --target http://127.0.0.1:PORT --no-pip -- --profile ... --out RUN --set ...`` to the
Ray Jobs server of the head node (see conftest.py), one job per step, each after the last one SUCCEEDED.

The job ships this checkout as its working_dir (``--no-pip``: the nodes run this venv), runs ``python
jobs/run.py --only STEP`` on the head node, joins the cluster through ``STRATA_RAY_ADDRESS=auto`` (set in every
job by ``strata submit``) and reaches Spark through the standalone Sail server (``--set engine.*``, passed
through to ``strata run``). A small graph with Spark and Ray work: ``ingest`` and ``devset`` (Spark) and
``evaluate`` (Spark, and the dense baseline's corpus embedded by Ray Data actors on the cluster). The lakehouse
and the run folder are in a bucket of a real S3-compatible server (``s3_server``; each job reads its address and
credentials from the head node's environment): each job works in a local copy of the run folder of its own and
pushes it back (``strata.mirror``), so a step finds the last one's outputs only through the bucket.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.cluster.test_cluster_run import TINY

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

STRATA = Path(sys.executable).parent / "strata"
STEP_TIMEOUT_S = float(os.environ.get("STRATA_CLUSTER_STEP_TIMEOUT", "600"))
STEPS = ["ingest", "devset", "evaluate"]  # the graph's active steps for SMALL but report, in order

# TINY's slice of the data, 20 dev queries, BM25 and the dense baseline; the training loop off. Every embedding
# goes through Ray Data (ray_min_texts 0) on 0.5-CPU actors, into an embedding cache of this run's own.
SMALL = {
    "data": TINY["data"],
    "eval": {"max_queries": 20, "rerank_k": 0, "retrievers": ["bm25", "baseline"]},
    "embed": {"batch_size": 64, "actor_cpus": 0.5, "ray_min_texts": 0},
    "pipeline": {"enrich": False, "features": False, "judge": False, "mine": False, "train": False},
}


@dataclass
class Job:
    step: str
    job_id: str
    rc: int
    seconds: float
    log: Path  # the submit's stdout: the job id, then the job's own logs
    err: Path  # its stderr: the SDK's notes, the final status
    record: dict = field(default_factory=dict)  # GET /api/jobs/ID after the submit returned
    sessions: int = 0  # Spark sessions the Sail server opened while the job ran
    seen: dict[str, set[str]] = field(default_factory=dict)  # ray:: processes sampled per node while it ran


@dataclass
class SubmitRun:
    run_dir: str  # s3://...
    expected: list[str]
    spark_remote: str  # the standalone Sail server's sc:// URL
    lakehouse: str  # s3://...
    jobs: list[Job] = field(default_factory=list)
    bad: dict[str, Job] = field(default_factory=dict)  # the bad-input jobs (see _bad_input)
    bad_lakehouse: str = ""

    def job(self, step: str) -> Job:
        return next(j for j in self.jobs if j.step == step)


def _tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture(scope="module")
def submit_run(data_root, s3_server, sail_server, ray_cluster, ray_job_server, tmp_path_factory) -> SubmitRun:
    from strata.config import load_config
    from strata.pipeline.graph import active

    work = tmp_path_factory.mktemp("cluster-submit")
    cfg_file = work / "small.yaml"
    bucket = s3_server("cluster-submit")
    lake = bucket + "/lakehouse"
    cfg_file.write_text(yaml.safe_dump({**SMALL, "data": {**SMALL["data"], "root": str(data_root)},
                                        "lakehouse": {"root": lake},
                                        "embed": {**SMALL["embed"], "cache_dir": str(work / "embed-cache")}}))
    expected = [s.name for s in active(load_config("demo", cfg_file))]
    run_dir = bucket + "/run"
    # The client: the cluster's token and the ray[default] extras (the Jobs SDK); no engine settings of its own
    # (a job gets variables by name, from the head node's environment, never this process's values).
    env = {**os.environ, **ray_job_server.env, "HF_HUB_OFFLINE": "1"}
    for k in ("STRATA_SPARK", "STRATA_SPARK_REMOTE", "STRATA_RAY_ADDRESS", "RAY_ADDRESS"):
        env.pop(k, None)
    stage_args = ["--profile", "demo", "--config", str(cfg_file), "--out", run_dir,
                  "--set", "engine.spark=connect", "--set", f"engine.spark_remote={sail_server.url}"]
    out = SubmitRun(run_dir, expected, sail_server.url, lake)
    tag = secrets.token_hex(3)
    for step in STEPS:
        job_id = f"strata-{step}-{tag}"
        cmd = [str(STRATA), "submit", step, "--target", ray_job_server.address, "--no-pip",
               "--submission-id", job_id, "--", *stage_args]
        log, err = work / f"{step}.log", work / f"{step}.err"
        sessions0 = len(sail_server.sessions())
        kept, ray_cluster.seen = ray_cluster.seen, {"head": set(), "worker": set()}  # this job's alone
        t0 = time.perf_counter()
        try:
            with open(log, "wb") as fo, open(err, "wb") as fe, ray_cluster.watch() as seen:
                try:
                    rc = subprocess.run(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env,
                                        cwd=str(work), timeout=STEP_TIMEOUT_S).returncode
                except subprocess.TimeoutExpired:
                    rc = -9
                    ray_job_server.post(f"/api/jobs/{job_id}/stop")
        finally:
            ray_cluster.seen = kept
        job = Job(step, job_id, rc, round(time.perf_counter() - t0, 1), log, err,
                  sessions=len(sail_server.sessions()) - sessions0, seen={k: set(v) for k, v in seen.items()})
        job.record = ray_job_server.job(job_id)
        out.jobs.append(job)
        if rc != 0:
            break  # the next step needs this one's outputs; the test names the failure
    if len(out.jobs) == len(STEPS) and all(j.rc == 0 for j in out.jobs):
        out.bad_lakehouse = lake.rsplit("/", 1)[0] + "/bad-lakehouse"
        out.bad = _bad_input(work, env, ray_job_server, sail_server.url, out.bad_lakehouse, tag)
    summary = {j.step: {"seconds": j.seconds, "status": j.record.get("status"), "spark_sessions": j.sessions,
                        "ray": {k: sorted(v) for k, v in j.seen.items()}} for j in [*out.jobs, *out.bad.values()]}
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nsubmitted jobs: {json.dumps(summary)}")
    return out


# A Home Depot file with one good row and two bad ones (a relevance that is no number, a row without its
# product id), in the source's own CSV format.
BAD_ROWS = [["id", "product_uid", "product_title", "search_term", "relevance"],
            ["1", "100001", "Simpson Strong-Tie 12-Gauge Angle", "l bracket", "2.5"],
            ["2", "100002", "BEHR Premium Textured DeckOver", "deck over", "abc"],
            ["3", "", "Everbilt Door Hinge", "door hinge", "3"]]


def _bad_input(work: Path, env: dict, server, spark_url: str, lake: str, tag: str) -> dict[str, Job]:
    """Two ingest jobs with bad input, submitted like the others: ``rows`` reads BAD_ROWS (its bad rows must
    land in ``quarantine`` with their reasons, in the bucket), ``missing`` names a file that is not there (the
    job must fail, naming it)."""
    import csv

    data = work / "bad-data"
    (data / "hd").mkdir(parents=True)
    with open(data / "hd" / "train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(BAD_ROWS)
    jobs = {}
    for name, path in (("rows", "hd/train.csv"), ("missing", "hd/no-such-file.csv")):
        cfg = work / f"bad-{name}.yaml"
        cfg.write_text(yaml.safe_dump({
            "data": {"root": str(data), "sources": [{"name": "homedepot", "path": path}]},
            "lakehouse": {"root": lake}, "eval": SMALL["eval"], "embed": SMALL["embed"],
            "pipeline": SMALL["pipeline"]}))
        job_id = f"strata-bad-{name}-{tag}"
        log, err = work / f"bad-{name}.log", work / f"bad-{name}.err"
        cmd = [str(STRATA), "submit", "ingest", "--target", server.address, "--no-pip", "--submission-id", job_id,
               "--", "--profile", "demo", "--config", str(cfg), "--out", str(work / f"bad-{name}-run"),
               "--set", "engine.spark=connect", "--set", f"engine.spark_remote={spark_url}"]
        t0 = time.perf_counter()
        with open(log, "wb") as fo, open(err, "wb") as fe:
            rc = subprocess.run(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env, cwd=str(work),
                                timeout=STEP_TIMEOUT_S).returncode
        jobs[name] = Job("ingest", job_id, rc, round(time.perf_counter() - t0, 1), log, err,
                         record=server.job(job_id))
    return jobs


def test_bad_input_on_the_cluster_is_quarantined_or_named(submit_run):
    """The cluster path treats bad input as the embedded one does: bad rows go to ``quarantine`` (in the bucket)
    with their reasons and the good row is ingested; a missing source file fails the job (FAILED, ``strata
    submit`` exits 1) with an error that names the file."""
    from strata.tables import Lakehouse

    assert set(submit_run.bad) == {"rows", "missing"}, "the bad-input jobs did not run (an earlier job failed)"
    rows = submit_run.bad["rows"]
    assert rows.rc == 0 and rows.record["status"] == "SUCCEEDED", _tail(rows.log)
    lh = Lakehouse(submit_run.bad_lakehouse)
    q = lh.read_arrow("quarantine").to_pandas()
    reasons = sorted(q.loc[q["source"] == "homedepot", "reason"])
    assert any("relevance 'abc' is not a number" in r for r in reasons), reasons
    assert any("product_uid" in r for r in reasons), reasons
    labels = lh.read_arrow("labels", ["product_id", "query"]).to_pandas()
    assert labels["query"].tolist() == ["l bracket"], labels
    missing = submit_run.bad["missing"]
    assert missing.rc == 1 and missing.record["status"] == "FAILED", _tail(missing.log)
    assert "no-such-file.csv" in missing.log.read_text(errors="replace"), _tail(missing.log)


def test_each_submitted_step_succeeded_as_a_ray_job(submit_run):
    assert submit_run.expected == [*STEPS, "report"]
    for j in submit_run.jobs:
        assert j.rc == 0 and j.record["status"] == "SUCCEEDED", (
            f"{j.step}: strata submit rc={j.rc}, job {j.record.get('status')} "
            f"({j.record.get('message')}):\n{_tail(j.log)}\n{_tail(j.err, 10)}")
    assert [j.step for j in submit_run.jobs] == STEPS
    for j in submit_run.jobs:
        rec = j.record
        assert rec["submission_id"] == j.job_id and rec["metadata"]["strata_stage"] == j.step
        assert rec["entrypoint"].startswith(f"python jobs/run.py --only {j.step} --profile demo --config ")
        env = rec["runtime_env"]
        assert env["env_vars"]["STRATA_RAY_ADDRESS"] == "auto" and "pip" not in env, env
        assert rec["driver_exit_code"] == 0 and rec["driver_node_id"], rec
        assert j.log.read_text(errors="replace").splitlines()[0] == j.job_id  # the id first, then the logs
        assert f"job {j.job_id}: SUCCEEDED" in j.err.read_text(errors="replace")
    # what each step leaves in the bucket: its record in state.json, its manifest, its tables and files
    from strata.storage import location

    run = location(submit_run.run_dir)
    state = json.loads((run / "state.json").read_text())
    assert list(state["steps"]) == STEPS
    for s in STEPS:
        man = json.loads((run / f"manifest-{s}.json").read_text())
        assert man["status"] == "succeeded", s
        engine = man["config"]["engine"]  # what the job's `strata run` resolved from the options passed through
        assert (engine["spark"], engine["spark_remote"]) == ("connect", submit_run.spark_remote), engine
    lake = location(submit_run.lakehouse)
    for table in ("products", "labels", "taxonomy", "search_events"):  # ingest's, written through Sail to S3
        assert list((lake / table / "_delta_log").glob("*.json")), table
    assert not (run / "lakehouse").exists()
    counts = state["steps"]["ingest"]["outputs"]["counts"]
    assert {c["source"] for c in counts if c["accepted"] > 0} == {"homedepot", "google-taxonomy", "bestbuy-small"}
    devset = state["steps"]["devset"]["outputs"]["dir"]  # the BEIR folder evaluate read, named in the run folder
    assert devset == "${root}/beir/homedepot-dev", devset
    assert (run / "beir" / "homedepot-dev" / "corpus.jsonl").is_file()
    assert (run / "beir" / "homedepot-dev" / "queries.jsonl").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    for name in ("bm25", "baseline"):
        row = metrics["retrievers"][name]
        assert 0 < row["num_queries"] <= 20 and 0.0 <= row["ndcg@10"] <= 1.0, (name, row)


def test_submitted_steps_worked_on_the_cluster(submit_run):
    """Spark work of every job went to the standalone Sail server (its log names each session: no embedded
    Sail), each driver ran under the head's JobSupervisor actor, and evaluate's embeddings ran as Ray actors
    on this cluster's nodes (sampled from the raylets' worker processes): the driver joined the cluster, it
    started no Ray of its own."""
    from tests.cluster.conftest import RAY_DETACHED

    assert len(submit_run.jobs) == len(STEPS), [j.step for j in submit_run.jobs]
    for j in submit_run.jobs:
        assert j.sessions >= 1, (j.step, j.sessions)
        assert any(t.startswith("ray::JobSupervisor") for t in j.seen["head"]), (j.step, j.seen)
    ev = submit_run.job("evaluate").seen
    work = {t for t in ev["head"] | ev["worker"]
            if not t.startswith("ray::JobSupervisor") and t.split(".")[0] not in RAY_DETACHED}
    assert work, f"no Ray task or actor of evaluate ran on the cluster: {ev}"
