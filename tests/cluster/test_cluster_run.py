"""The stage graph run the way a scheduler runs it, on a real local cluster: every step in a process of its own
(``strata run --only STEP``), Spark through a standalone Sail Spark Connect server, Ray through a two-node Ray
cluster (see conftest.py), on a tiny slice of the real data, in folders both nodes share. An object-store
lakehouse on the cluster is in test_cluster_submit.py; mining, judging and training with ``s3://`` storage in
tests/mine, tests/train and tests/reliability (here, on 2 busy cores, the test server's transfers made this run
about 2 minutes longer).

Two steps are killed (SIGKILL, as a preempted task is) part-way and run again before the graph goes on:
``mine`` after its first MERGE into ``judgments``, ``train-stage1`` after its first checkpoint. The rerun must
finish, resume what was done (the judge skips judged pairs, training restarts from the checkpoint), and leave
no duplicate rows in the tables the step writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

STRATA = Path(sys.executable).parent / "strata"
STEP_TIMEOUT_S = float(os.environ.get("STRATA_CLUSTER_STEP_TIMEOUT", "600"))
KILL_WAIT_S = 300.0  # how long to wait for a step to reach the point where it is killed

# The tiny configuration (sizes from tests/integration/test_demo_pipeline.py, shrunk). Every Ray actor and
# train worker asks for 0.5 CPU: each node has 1.
TINY = {
    "data": {"sources": [
        {"name": "homedepot", "path": "homedepot/train.csv.gz", "limit": 2000},
        {"name": "google-taxonomy", "path": "google-taxonomy/taxonomy-with-ids.en-US.txt"},
        {"name": "bestbuy-small", "path": "bestbuy-small", "limit": 300},
    ]},
    "eval": {"max_queries": 20, "rerank_k": 3, "retrievers": ["bm25"]},
    "embed": {"batch_size": 64, "actor_cpus": 0.5},
    # the judge on Ray actors even for a few hundred pairs, MERGEd every 64 rows: mine is killed between two
    "judge": {"actor_cpus": 0.5, "ray_min_pairs": 0, "batch_size": 16, "chunk_rows": 64},
    # a 1-layer cross-encoder on 200 pairs, no grade head (its fit scores a holdout: minutes on 2 busy cores)
    "judge_train": {"layers": 1, "max_pairs": 200, "max_seconds": 30, "stack_fraction": 0},
    "mine": {"max_queries": 20, "recall_sample": 20},
    # two workers (DDP over gloo, one CPU of the cluster's two, the other for Ray Data); a checkpoint every 2 of
    # stage 1's 6 steps: it is killed after the first and resumes from it
    "train": {"workers": 2, "cpus_per_worker": 0.5, "threads": 1, "checkpoint_every": 2, "keep_checkpoints": 1,
              "stage1": {"max_steps": 6, "queries_per_batch": 4},
              "stage2": {"max_steps": 2, "queries_per_batch": 4}},
}


@dataclass
class StepRun:
    name: str
    rc: int
    seconds: float
    log: Path
    sessions: int = 0  # Spark sessions the Sail server opened while the step ran
    killed_after: float | None = None  # a killed first attempt: seconds it ran before SIGKILL
    killed_at: str = ""
    idle_wait: float | None = None  # seconds until the killed attempt's Ray workers were gone


@dataclass
class ClusterRun:
    run_dir: Path
    lakehouse: str  # the lakehouse root the steps write (RUN_DIR/lakehouse)
    train_storage: str | None  # train.storage (None: under the run folder)
    expected: list[str]  # the graph's active steps for the tiny config, in order
    steps: list[StepRun] = field(default_factory=list)
    seen: dict[str, set[str]] = field(default_factory=dict)  # ray:: processes sampled per node
    nodes_after: int = 0
    stale_after_kill: dict[str, list[str]] = field(default_factory=dict)

    def step(self, name: str) -> StepRun:
        return next(s for s in self.steps if s.name == name)


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def _launch(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the step's process group (the ``strata`` process and what it forked; its Ray tasks run under the
    raylets and end when Ray sees their driver die)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _wait(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return -9


def _delta_commits(table: str) -> int:
    from strata.storage import location

    log = location(table) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def _train_shared(run_dir: Path, storage: str | None):
    """Where train-stage1/2 keep their groups and checkpoints: train.storage, in the run's own folder."""
    from strata.train.config import TrainConfig
    from strata.train.runner import shared_root

    return shared_root(TrainConfig(storage=storage), run_dir / "train")


def _checkpointed(run_dir: Path, storage: str | None) -> bool:
    """Stage 1 has a whole checkpoint (the one the runner would resume from): a state file alone may sit next to
    weights Ray is still persisting, which a resume rightly ignores."""
    from strata.train.runner import _state_files, latest_checkpoint

    ray_dir = _train_shared(run_dir, storage) / "stage1" / "ray"
    return bool(_state_files(ray_dir)) and latest_checkpoint(ray_dir)[0] is not None


# The steps whose first attempt is SIGKILLed, and where. _kill_point, called just before the step starts, returns
# the check that says the step has got there.
KILL_AT = {"mine": "its first MERGE into judgments", "train-stage1": "its first whole checkpoint"}


def _kill_point(name: str, run: "ClusterRun"):
    if name == "mine":
        table = f"{run.lakehouse}/judgments"
        base = _delta_commits(table)
        return lambda: _delta_commits(table) > base
    if name == "train-stage1":
        return lambda: _checkpointed(run.run_dir, run.train_storage)
    return None


@pytest.fixture(scope="module")
def cluster_run(data_root, sail_server, ray_cluster, tmp_path_factory) -> ClusterRun:  # no data: no cluster
    from strata.config import load_config
    from strata.pipeline.graph import active

    work = tmp_path_factory.mktemp("cluster-run")
    run_dir = work / "run"
    lake, train_storage = str(run_dir / "lakehouse"), None
    cfg_file = work / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "root": str(data_root)},
                                        "embed": {**TINY["embed"], "cache_dir": str(work / "embed-cache")}}))
    engine = ["--set", "engine.spark=connect", "--set", f"engine.spark_remote={sail_server.url}",
              "--set", f"engine.ray_address={ray_cluster.address}"]
    steps = [s.name for s in active(load_config("demo", cfg_file))]
    env = {**os.environ, **ray_cluster.env, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for k in ("STRATA_SPARK", "STRATA_SPARK_REMOTE", "STRATA_RAY_ADDRESS"):  # the --set flags say where
        env.pop(k, None)
    out = ClusterRun(run_dir, lake, train_storage, steps)

    with ray_cluster.watch() as seen:
        for name in steps:
            cmd = [str(STRATA), "run", "--profile", "demo", "--config", str(cfg_file), "--out", str(run_dir),
                   "--only", name, *engine]
            log = work / f"{name}.log"
            sessions0 = len(sail_server.sessions())
            killed_after, killed_at, idle_wait = None, "", None
            there = _kill_point(name, out)
            if there is not None:
                t0 = time.perf_counter()
                proc = _launch(cmd, log, env)
                deadline = time.monotonic() + KILL_WAIT_S
                while proc.poll() is None and not there() and time.monotonic() < deadline:
                    time.sleep(0.2)
                if proc.poll() is not None:
                    pytest.fail(f"{name} ended (rc={proc.returncode}) before {KILL_AT[name]}, where it was to be "
                                f"killed:\n{_tail(log)}")
                if not there():
                    _kill_group(proc)
                    pytest.fail(f"{name} did not reach {KILL_AT[name]} within {KILL_WAIT_S:.0f}s:\n{_tail(log)}")
                _kill_group(proc)
                killed_after, killed_at = round(time.perf_counter() - t0, 1), KILL_AT[name]
                # Ray ends a dead driver's tasks and actors: wait for that (bounded), then run the step again
                tw = time.perf_counter()
                stale = ray_cluster.wait_idle(timeout=60)
                idle_wait = round(time.perf_counter() - tw, 1)
                out.stale_after_kill[name] = sorted(stale)
            t0 = time.perf_counter()
            rc = _wait(_launch(cmd, log, env), STEP_TIMEOUT_S)
            out.steps.append(StepRun(name, rc, round(time.perf_counter() - t0, 1), log,
                                     len(sail_server.sessions()) - sessions0, killed_after, killed_at, idle_wait))
            if rc != 0:
                break  # the later steps need this one's outputs; the test names the failure
    out.seen = {k: set(v) for k, v in seen.items()}
    out.nodes_after = ray_cluster.alive_nodes()
    summary = {s.name: {"seconds": s.seconds, "spark_sessions": s.sessions,
                        **({"killed_after_s": s.killed_after, "killed_at": s.killed_at,
                            "ray_idle_after_s": s.idle_wait} if s.killed_after is not None else {})}
               for s in out.steps}
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\ncluster run: {json.dumps(summary)}\nray processes seen: "
          f"{ {k: sorted(v) for k, v in out.seen.items()} }\nleft after a kill: {out.stale_after_kill}")
    return out


def test_every_step_ran_in_its_own_process(cluster_run):
    expected = cluster_run.expected
    assert {"ingest", "judge-train", "mine", "train-stage1", "train-stage2", "evaluate", "report"} <= set(expected)
    failed = [s for s in cluster_run.steps if s.rc != 0]
    assert not failed, f"{failed[0].name} failed (rc={failed[0].rc}):\n{_tail(failed[0].log)}"
    assert [s.name for s in cluster_run.steps] == expected
    state = json.loads((cluster_run.run_dir / "state.json").read_text())
    assert list(state["steps"]) == expected
    for s in expected:  # one manifest per --only process, each saying it succeeded
        man = json.loads((cluster_run.run_dir / f"manifest-{s}.json").read_text())
        assert man["status"] == "succeeded", s


def test_metrics_have_the_trained_models_row(cluster_run):
    metrics = json.loads((cluster_run.run_dir / "metrics.json").read_text())
    model = str(cluster_run.run_dir / "model")
    assert {"bm25", model, f"rerank:{model}"} <= set(metrics["retrievers"])
    row = metrics["retrievers"][model]
    assert 0 < row["num_queries"] <= 20
    for k in ("ndcg@10", "recall@100", "mrr@10"):
        assert 0.0 <= row[k] <= 1.0, (k, row[k])
    assert (cluster_run.run_dir / "report.md").is_file()


def test_spark_work_went_to_the_sail_server(cluster_run):
    """Each step that uses Spark opened its session on the standalone server (its log names each session):
    none fell back to an embedded Sail."""
    from strata.pipeline.graph import SPARK, STEPS

    spark_steps = {s.name: s.sessions for s in cluster_run.steps if SPARK in STEPS[s.name].engines}
    assert spark_steps and all(n >= 1 for n in spark_steps.values()), spark_steps
    # the lakehouse the steps wrote through it
    for table in ("products", "labels", "product_features", "judgments", "training_examples"):
        assert _delta_commits(f"{cluster_run.lakehouse}/{table}") >= 1, table


def test_ray_work_ran_on_both_nodes(cluster_run):
    """Both nodes stayed alive, and tasks or actors of the run ran on the worker node as well as the head
    (sampled from each raylet's worker processes, ``ray::<task or actor>``)."""
    assert cluster_run.nodes_after == 2
    assert cluster_run.seen.get("worker"), f"nothing ran on the worker node: {cluster_run.seen}"
    everything = cluster_run.seen["head"] | cluster_run.seen["worker"]
    assert any("RayTrainWorker" in t for t in everything), everything  # Ray Train's workers ran on the cluster


def _keys_unique(lakehouse: str, table: str) -> tuple[int, int]:
    from deltalake import DeltaTable

    from strata.tables import spec

    keys = list(spec(table).keys)
    t = DeltaTable(f"{lakehouse}/{table}").to_pyarrow_table(columns=keys)
    return t.num_rows, t.group_by(keys).aggregate([]).num_rows


def test_killed_mine_reran_without_duplicates(cluster_run):
    """mine was SIGKILLed after its first MERGE into judgments; its rerun judged only what was missing, and both
    tables it writes hold each key once and as many rows as a clean run."""
    s = cluster_run.step("mine")
    assert s.killed_after is not None and s.rc == 0, s
    assert not cluster_run.stale_after_kill["mine"], "Ray kept the killed driver's tasks or actors"
    for table in ("judgments", "training_examples"):
        rows, keys = _keys_unique(cluster_run.lakehouse, table)
        assert rows > 0 and rows == keys, (table, rows, keys)
    man = json.loads((cluster_run.run_dir / "manifest-mine.json").read_text())
    judge = man["mine"]["judge"]
    assert judge["already_judged"] > 0, judge  # the killed attempt's MERGEs were kept, not judged again
    # as many rows as a clean run leaves: one judgment per candidate pair, the examples the rerun reported
    assert _keys_unique(cluster_run.lakehouse, "judgments")[0] == judge["candidates"], judge
    assert _keys_unique(cluster_run.lakehouse, "training_examples")[0] == man["mine"]["rows"]


def test_killed_training_resumed_from_its_checkpoint(cluster_run):
    """train-stage1 was SIGKILLed after its first checkpoint; the rerun resumed from it (Ray Train on the
    cluster, checkpoints under the run folder) and its query groups, written through Spark, hold each key once."""
    import pyarrow.parquet as pq

    s = cluster_run.step("train-stage1")
    assert s.killed_after is not None and s.rc == 0, s
    assert not cluster_run.stale_after_kill["train-stage1"], "Ray kept the killed driver's tasks or actors"
    state = json.loads((cluster_run.run_dir / "state.json").read_text())
    (stage1,) = state["steps"]["train-stage1"]["outputs"]["stages"]
    assert stage1["resumed_from_step"] is not None and 0 < stage1["resumed_from_step"] < stage1["steps"], stage1
    summary = json.loads((cluster_run.run_dir / "train" / "train.json").read_text())
    assert summary["config"]["workers"] == 2  # DDP: both ranks resumed from the checkpoint
    shared = _train_shared(cluster_run.run_dir, cluster_run.train_storage)
    groups = pq.read_table(str(shared / "groups"), columns=["catalog", "query_norm", "kind"])
    assert groups.num_rows == groups.group_by(["catalog", "query_norm", "kind"]).aggregate([]).num_rows > 0
