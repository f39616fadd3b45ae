"""infra/: every file parses; the bundle, the KubeRay manifests and the Ray cluster config pass the schemas the
real tools use (upstream, from ../shared/schemas, and ray's own), the KubeRay manifests pass the operator's Go
rules, and the Airflow DAG loads (with a stub of its API, and with a real Airflow DagBag when one is given);
every entry point they name exists and runs ``--help``, with options its command accepts, the infra profile and
a durable ``--out``.

Entry points are collected from the parsed files themselves (Databricks ``spark_python_task.python_file``,
RayJob ``entrypoint``, the stages the Airflow DAG submits, any ``jobs/*.py`` the Ray cluster config runs), so
a new task in any of them is covered without touching this test. Each checker also has a test that it rejects
a hand-broken copy (here) or a hand-written case (test_checkers.py).
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path
from typing import NamedTuple

import jsonschema
import pytest
import yaml

from strata.config import load_config
from strata.ops import submit as ops
from strata.ops.infra import INFRA_PROFILE, render
from strata.pipeline.graph import active

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
BUNDLE = INFRA / "databricks"
KUBERAY = INFRA / "kuberay"
DAG_FILE = INFRA / "airflow" / "strata_nightly.py"
CLUSTER_YAML = INFRA / "ray" / "cluster.yaml"


def _helper(name: str):
    """A sibling module of this file (tests run with --import-mode=importlib: no package imports)."""
    spec = importlib.util.spec_from_file_location(f"strata_infra_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


schemas = _helper("schemas")  # upstream bundle schema / KubeRay CRDs
kuberay_rules = _helper("kuberay_rules")  # the KubeRay operator's Go checks

# Commands that land with later issues: their entry points exist, the `strata` command does not yet.
PENDING: dict[str, str] = {}  # every command the infra names exists
# The steps the staged nightly runs: the infra profile's active steps of the graph, in order.
NIGHTLY = [s.name for s in active(load_config(INFRA_PROFILE), "run")]
COMMAND_OF = {f: c for c, f in ops.JOBS.items()}  # jobs/run.py -> "run"


def test_infra_matches_the_graph():
    """Every graph-derived block of infra/ and docs/ is what `strata infra render` writes (no drift)."""
    assert render(check=True) == []


def _yaml_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.suffix in (".yml", ".yaml"))


# -- parsing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [*_yaml_files(), *sorted(INFRA.rglob("*.py"))],
                         ids=lambda p: str(p.relative_to(INFRA)))
def test_every_infra_file_parses(path):
    if path.suffix == ".py":
        compile(path.read_text(), str(path), "exec")
    else:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs and all(isinstance(d, dict) for d in docs)


def test_infra_has_every_platform():
    for p in (BUNDLE / "databricks.yml", CLUSTER_YAML, DAG_FILE, KUBERAY / "raycluster.yaml"):
        assert p.is_file(), p
    assert list(BUNDLE.glob("resources/*.yml"))
    assert any(d.get("kind") == "RayJob" for p in KUBERAY.glob("*.yaml") for d in yaml.safe_load_all(p.read_text()))


# -- Databricks bundle ---------------------------------------------------------------------------------
def _bundle() -> tuple[dict, dict[str, Path]]:
    """databricks.yml merged with its includes, as the CLI does; plus the file each job came from."""
    root = yaml.safe_load((BUNDLE / "databricks.yml").read_text())
    merged = dict(root)
    merged["resources"] = {"jobs": {}}
    where: dict[str, Path] = {}
    for pattern in root.get("include", []):
        for f in sorted(BUNDLE.glob(pattern)):
            for key, job in (yaml.safe_load(f.read_text())["resources"]["jobs"]).items():
                assert key not in merged["resources"]["jobs"], f"job {key} defined twice"
                merged["resources"]["jobs"][key] = job
                where[key] = f
    return merged, where


def _quartz_ok(expr: str) -> bool:
    f = expr.split()
    if len(f) not in (6, 7):
        return False
    # Quartz: exactly one of day-of-month / day-of-week is '?'
    return (f[3] == "?") != (f[5] == "?")


def _bundle_files() -> list[Path]:
    return [BUNDLE / "databricks.yml", *sorted(BUNDLE.glob("resources/*.yml"))]


@pytest.mark.parametrize("path", _bundle_files(), ids=lambda p: str(p.relative_to(BUNDLE)))
def test_bundle_file_against_the_upstream_schema(path):
    """Each file alone: the CLI reads every include as a root document of the same schema before merging."""
    assert schemas.bundle_problems(yaml.safe_load(path.read_text())) == []


def test_bundle_merged_against_the_upstream_schema():
    b, _ = _bundle()
    assert schemas.bundle_problems(b) == []


def _broken_bundle(edit) -> dict:
    b, _ = _bundle()
    b = copy.deepcopy(b)
    edit(b)
    return b


def _nightly_task(b: dict, i: int = 0) -> dict:
    return b["resources"]["jobs"][ops.NIGHTLY_JOB]["tasks"][i]


@pytest.mark.parametrize("edit,expect", [
    (lambda b: _nightly_task(b).update(max_retires=2), "'max_retires' was unexpected"),  # a typo: unknown key
    (lambda b: _nightly_task(b).update(max_retries="two"), "'two'"),  # wrong type, not an interpolation
    (lambda b: _nightly_task(b)["spark_python_task"].update(parameters="--profile cluster"), "--profile cluster"),
    (lambda b: b["resources"]["jobs"][ops.NIGHTLY_JOB]["job_clusters"][0]["new_cluster"].update(
        num_workers="${vars.cpu_workers}"), "vars.cpu_workers"),  # a misspelt interpolation
    (lambda b: b["resources"]["jobs"][ops.NIGHTLY_JOB]["schedule"].update(pause_status="OFF"), "'OFF'"),
], ids=["unknown-task-key", "wrong-type", "parameters-not-a-list", "bad-interpolation", "bad-enum"])
def test_bundle_schema_rejects_a_broken_copy(edit, expect):
    problems = schemas.bundle_problems(_broken_bundle(edit))
    assert len(problems) == 1 and expect in problems[0], problems


def test_bundle_schema_accepts_interpolations():
    """${var.x} stands for a typed value (here an int and a bool) before the CLI resolves it."""
    def edit(b):
        _nightly_task(b).update(max_retries="${var.cpu_workers}", retry_on_timeout="${var.cpu_workers}")
    assert schemas.bundle_problems(_broken_bundle(edit)) == []


def test_bundle_references():
    b, where = _bundle()
    targets = b["targets"]
    assert {"dev", "prod"} <= set(targets)
    assert targets["dev"]["mode"] == "development" and targets["prod"]["mode"] == "production"
    assert [t for t, v in targets.items() if v.get("default")] == ["dev"]
    for p in b["sync"]["paths"]:
        assert (BUNDLE / p).is_dir(), p
    for art in b["artifacts"].values():
        assert (BUNDLE / art["path"] / "pyproject.toml").is_file()

    declared = set(b["variables"])
    text = (BUNDLE / "databricks.yml").read_text() + "".join(p.read_text() for p in where.values())
    used = set(re.findall(r"\$\{var\.([A-Za-z_]+)\}", text))
    assert used <= declared, f"undeclared variables {used - declared}"
    for t in targets.values():
        assert set(t.get("variables", {})) <= declared

    for key, job in b["resources"]["jobs"].items():
        keys = [t["task_key"] for t in job["tasks"]]
        assert len(keys) == len(set(keys)), key
        clusters = {c["job_cluster_key"] for c in job.get("job_clusters", [])}
        params = {p["name"] for p in job.get("parameters", [])}
        for t in job["tasks"]:
            assert t.get("job_cluster_key") in clusters, (key, t["task_key"])
            for d in t.get("depends_on", []):
                assert d["task_key"] in keys and keys.index(d["task_key"]) < keys.index(t["task_key"])
            for arg in t["spark_python_task"].get("parameters", []):
                for ref in re.findall(r"\{\{job\.parameters\.([A-Za-z_]+)\}\}", arg):
                    assert ref in params, (key, t["task_key"], ref)
        if "schedule" in job:
            assert _quartz_ok(job["schedule"]["quartz_cron_expression"])


def test_nightly_job_chains_the_steps_of_the_graph():
    b, _ = _bundle()
    job = b["resources"]["jobs"][ops.NIGHTLY_JOB]
    keys = [s.replace("-", "_") for s in NIGHTLY]
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert list(tasks) == keys
    for prev, cur in zip(keys, keys[1:]):
        assert [d["task_key"] for d in tasks[cur]["depends_on"]] == [prev]
    assert "depends_on" not in tasks[keys[0]]
    for step, key in zip(NIGHTLY, keys):  # each task runs its own step of the graph, with the profile
        params = tasks[key]["spark_python_task"]["parameters"]
        assert params[params.index("--only") + 1] == step and "--profile" in params
    assert job["schedule"]["quartz_cron_expression"] and job["max_concurrent_runs"] == 1
    gpu = {c["job_cluster_key"] for c in job["job_clusters"] if "gpu" in c["new_cluster"]["spark_version"]}
    assert {tasks[s]["job_cluster_key"] for s in ("judge_train", "train_stage1", "train_stage2")} <= gpu
    assert ops.REFRESH_JOB in b["resources"]["jobs"]


# -- KubeRay -------------------------------------------------------------------------------------------
def _manifests() -> list[tuple[Path, dict]]:
    return [(p, d) for p in sorted(KUBERAY.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def _cluster_specs(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"].get("rayClusterSpec")


def _gpus(container: dict) -> int:
    return int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def _manifest_id(item) -> str:
    path, doc = item
    return f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("item", _manifests(), ids=_manifest_id)
def test_kuberay_manifest_against_the_upstream_crd(item):
    _, doc = item
    assert schemas.crd_problems(doc) == []


@pytest.mark.parametrize("item", _manifests(), ids=_manifest_id)
def test_kuberay_manifest_passes_the_operators_rules(item):
    _, doc = item
    assert kuberay_rules.problems(doc) == []


def _manifest(name: str, kind: str) -> dict:
    return copy.deepcopy(next(d for p, d in _manifests() if p.name == name and d["kind"] == kind))


def _first_worker(doc: dict) -> dict:
    return _cluster_specs(doc)["workerGroupSpecs"][0]


@pytest.mark.parametrize("name,kind,edit,expect", [
    ("rayjob-refresh.yaml", "RayJob", lambda d: d["spec"].update(entrypoint=5), "5 is not of type 'string'"),
    ("rayjob-step.yaml", "RayJob", lambda d: d["spec"].update(backofflimit=0), "'backofflimit' was unexpected"),
    ("rayjob-refresh.yaml", "RayJob", lambda d: _first_worker(d).update(replicas="1"),
     "'1' is not of type 'integer'"),
    ("raycluster.yaml", "RayCluster", lambda d: _first_worker(d)["rayStartParams"].update({"num-gpus": 1}),
     "1 is not of type 'string'"),
    ("raycluster.yaml", "RayCluster", lambda d: _first_worker(d)["template"]["spec"]["containers"][0]
     ["resources"]["limits"].update({"nvidia.com/gpu": "one"}), "'one' does not match"),  # not a quantity
    ("raycluster.yaml", "RayCluster", lambda d: d.update(apiVersion="ray.io/v1alpha1"), "'ray.io/v1' was expected"),
], ids=["entrypoint-int", "unknown-field", "replicas-string", "start-param-int", "bad-quantity", "api-version"])
def test_kuberay_crd_rejects_a_broken_copy(name, kind, edit, expect):
    doc = _manifest(name, kind)
    edit(doc)
    problems = schemas.crd_problems(doc)
    assert len(problems) == 1 and expect in problems[0], problems


def _step_with_backoff(doc: dict) -> None:
    """rayjob-step.yaml as it was: backoffLimit: 1 beside clusterSelector."""
    assert "clusterSelector" in doc["spec"] and doc["spec"].get("backoffLimit", 0) == 0
    doc["spec"]["backoffLimit"] = 1


# Broken copies that the CRD accepts and only the operator's Go rules reject.
_RULE_CASES = [
    pytest.param("rayjob-step.yaml", "RayJob", _step_with_backoff,
                 "BackoffLimit is incompatible with ClusterSelector mode", id="selector-backoff"),
    pytest.param("rayjob-step.yaml", "RayJob",
                 lambda d: d["spec"].update(suspend=True, shutdownAfterJobFinishes=True),
                 "the ClusterSelector mode doesn't support the suspend operation", id="selector-suspend"),
    pytest.param("rayjob-refresh.yaml", "RayJob", lambda d: d["spec"].update(shutdownAfterJobFinishes=False),
                 "a RayJob with shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished",
                 id="ttl-without-shutdown"),
    pytest.param("rayjob-refresh.yaml", "RayJob", lambda d: d["spec"].update(activeDeadlineSeconds=0),
                 "activeDeadlineSeconds must be a positive integer", id="deadline-zero"),
    pytest.param("rayjob-refresh.yaml", "RayJob", lambda d: d["spec"].update(runtimeEnvYAML="- a\n- b\n"),
                 "failed to unmarshal RuntimeEnvYAML", id="runtime-env-list"),
    pytest.param("rayjob-refresh.yaml", "RayJob", lambda d: _first_worker(d).update(minReplicas=2),
                 "rayClusterSpec: worker group gpu has minReplicas 2 greater than maxReplicas 1", id="min-over-max"),
    pytest.param("raycluster.yaml", "RayCluster", lambda d: d["metadata"].update(name="Strata_Cluster"),
                 "RayCluster name should be a valid DNS1035 label", id="bad-name"),
    pytest.param("raycluster.yaml", "RayCluster", lambda d: _first_worker(d).update(suspend=True),
                 "worker group gpu cannot be suspended with Autoscaler enabled", id="suspend-autoscaled"),
]


@pytest.mark.parametrize("name,kind,edit,expect", _RULE_CASES)
def test_kuberay_rules_reject_a_broken_copy(name, kind, edit, expect):
    """selector-backoff is the rayjob-step.yaml that was checked in: the operator fails such a RayJob."""
    doc = _manifest(name, kind)
    edit(doc)
    problems = kuberay_rules.problems(doc)
    assert len(problems) == 1 and expect in problems[0], problems


@pytest.mark.parametrize("name,kind,edit,expect", _RULE_CASES)
def test_kuberay_rule_cases_pass_the_crd(name, kind, edit, expect):
    """Each rule case is schema-valid: without the Go rules, `kubectl apply` would take it."""
    doc = _manifest(name, kind)
    edit(doc)
    assert schemas.crd_problems(doc) == []


def test_kuberay_manifests_structure():
    import ray

    names = {d["metadata"]["name"] for _, d in _manifests() if d["kind"] == "RayCluster"}
    for path, doc in _manifests():
        spec = _cluster_specs(doc)
        if doc["kind"] == "RayJob" and "clusterSelector" in doc["spec"]:  # a cluster infra/ defines
            assert doc["spec"]["clusterSelector"]["ray.io/cluster"] in names, path
        if spec is None:
            continue
        assert spec["rayVersion"] == ray.__version__, path  # the image's Ray must match the client's
        head = spec["headGroupSpec"]["template"]["spec"]
        assert all(_gpus(c) == 0 for c in head["containers"]), "head is CPU-only"
        gpu_groups = [g for g in spec["workerGroupSpecs"]
                      if any(_gpus(c) >= 1 for c in g["template"]["spec"]["containers"])]
        assert gpu_groups, f"{path}: no GPU worker group"
        for g in spec["workerGroupSpecs"]:
            assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        for pod in [head] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]:
            vols = {v["name"] for v in pod.get("volumes", [])}
            for c in pod["containers"]:
                for m in c.get("volumeMounts", []):
                    assert m["name"] in vols, (path, c["name"], m["name"])
                for e in c.get("env", []):
                    # secrets only by reference
                    assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD", e["name"]) or "valueFrom" in e, e


# -- Ray cluster launcher ------------------------------------------------------------------------------
def test_ray_cluster_yaml_against_rays_own_schema():
    import ray
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load(CLUSTER_YAML.read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)
    prepared = prepare_config(cfg)  # fills provider defaults, as `ray up` does
    validate_config(prepared)
    types_ = cfg["available_node_types"]
    head = types_[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert any(t["resources"].get("GPU", 0) >= 1 for k, t in types_.items() if k != cfg["head_node_type"])


# -- Airflow DAG: its AST, a stub of the Airflow API, and a real DagBag when one is given ----------------
def _dag_ast() -> tuple[ast.Module, ast.Call]:
    tree = ast.parse(DAG_FILE.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "DAG"]
    assert len(calls) == 1
    return tree, calls[0]


def _assigned(tree: ast.Module, name: str):
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == name for t in n.targets):
            return ast.literal_eval(n.value)
    raise AssertionError(f"no module-level {name} = <literal>")


def test_airflow_dag_ast():
    tree, dag = _dag_ast()
    kw = {k.arg: k.value for k in dag.keywords}
    assert ast.literal_eval(kw["dag_id"]) == "strata_nightly"
    schedule = ast.literal_eval(kw["schedule"])
    assert len(schedule.split()) == 5 or schedule in ("@daily", "@midnight")
    assert ast.literal_eval(kw["catchup"]) is False
    assert ast.literal_eval(kw["max_active_runs"]) == 1
    default_args = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                        and getattr(n.targets[0], "id", None) == "default_args")
    retries = {ast.literal_eval(k): v for k, v in zip(default_args.keys, default_args.values)}["retries"]
    assert ast.literal_eval(retries) >= 1
    assert _assigned(tree, "STEPS") == NIGHTLY
    chains = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "chain"]
    assert len(chains) == 1


class _Op:
    def __init__(self, task_id, bash_command, **kw):
        self.task_id, self.bash_command, self.downstream = task_id, bash_command, []
        _Stub.dag.tasks.append(self)


class _Stub:
    dag = None


class _DAG:
    def __init__(self, dag_id, **kw):
        self.dag_id, self.kw, self.tasks = dag_id, kw, []

    def __enter__(self):
        _Stub.dag = self
        return self

    def __exit__(self, *a):
        return False


def _chain(*tasks):
    for a, b in zip(tasks, tasks[1:]):
        a.downstream.append(b.task_id)


def _import_dag_with_stub(monkeypatch):
    """The DAG file executed against a few-line stand-in of the Airflow 2 API (DAG, BashOperator, chain)."""
    airflow = types.ModuleType("airflow")
    airflow.DAG = _DAG
    mods = {"airflow": airflow, "airflow.models": types.ModuleType("airflow.models"),
            "airflow.models.baseoperator": types.ModuleType("airflow.models.baseoperator"),
            "airflow.operators": types.ModuleType("airflow.operators"),
            "airflow.operators.bash": types.ModuleType("airflow.operators.bash")}
    mods["airflow.models.baseoperator"].chain = _chain
    mods["airflow.operators.bash"].BashOperator = _Op
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    for name in ("airflow.sdk", "airflow.providers", "airflow.providers.standard"):
        monkeypatch.setitem(sys.modules, name, None)  # -> ImportError: the Airflow 2 branch
    ns: dict = {"__name__": "strata_nightly"}
    exec(compile(DAG_FILE.read_text(), str(DAG_FILE), "exec"), ns)
    return ns["dag"]


def _render(cmd: str, params: dict) -> str:
    import jinja2

    class _Var:
        class value:  # noqa: N801 - mirrors Airflow's `var.value`
            @staticmethod
            def get(name, default=None):
                return default

    return jinja2.Template(cmd, undefined=jinja2.StrictUndefined).render(
        params=params, ds="2026-01-02", ds_nodash="20260102", ti={"try_number": 1}, var=_Var)


def _check_submits(tasks: list[tuple[str, str]]) -> None:
    """(task_id, rendered bash_command) per task, in DAG order: each is ``strata submit <task_id>`` to a Ray
    target without pip, parsed by the real ``strata submit``, and passes its step the infra profile and a
    durable ``--out`` (durability_problems below)."""
    import typer

    from strata.commands import submit as submit_cmd

    app = typer.Typer()

    @app.callback()
    def _cb() -> None:
        pass

    submit_cmd.register(app)
    group = typer.main.get_command(app)
    for task_id, command in tasks:
        argv = shlex.split(command)
        assert argv[:3] == ["strata", "submit", task_id]
        sctx = group.commands["submit"].make_context("submit", argv[2:])  # raises on a bad option
        assert sctx.params["stage"] == task_id and ops.parse_target(sctx.params["target"]).kind == "ray"
        assert sctx.params["pip"] is False
        stage_args = ops.job_args(task_id, argv[argv.index("--") + 1:])
        assert durability_problems(ops.stage_command(task_id)[0], stage_args) == [], task_id


def test_airflow_dag_with_stub_renders_valid_submits(monkeypatch):
    dag = _import_dag_with_stub(monkeypatch)
    assert [t.task_id for t in dag.tasks] == NIGHTLY
    for a, b in zip(dag.tasks, dag.tasks[1:]):
        assert a.downstream == [b.task_id]
    assert dag.kw["catchup"] is False and dag.kw["default_args"]["retries"] >= 1
    _check_submits([(t.task_id, _render(t.bash_command, dag.kw["params"])) for t in dag.tasks])


# What STRATA_AIRFLOW_PYTHON=install puts in its venv (3.3.2 installed in ~2 min, 2.11.2 in ~5; both pass).
AIRFLOW_VERSION = os.environ.get("STRATA_AIRFLOW_VERSION", "3.3.2")


def _airflow_python(request) -> str:
    """STRATA_AIRFLOW_PYTHON: a Python with apache-airflow installed, or ``install`` to build (once) a venv
    with apache-airflow==AIRFLOW_VERSION (STRATA_AIRFLOW_VERSION) under pytest's cache dir
    (.pytest_cache/d/strata-airflow-VERSION/venv, reused by later runs). Unset: the test is skipped."""
    value = os.environ.get("STRATA_AIRFLOW_PYTHON", "")
    if not value:
        pytest.skip("real Airflow DagBag: set STRATA_AIRFLOW_PYTHON to a python that has apache-airflow, or to "
                    "'install' to build one under .pytest_cache (docs/deploy.md)")
    if value != "install":
        return value
    cache = getattr(request.config, "cache", None)
    venv = (cache.mkdir(f"strata-airflow-{AIRFLOW_VERSION}") if cache is not None
            else request.getfixturevalue("tmp_path_factory").mktemp("airflow")) / "venv"
    python = venv / "bin" / "python"
    if not python.exists() or subprocess.run([python, "-c", "import airflow"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        r = subprocess.run([python, "-m", "pip", "install", "-q", f"apache-airflow=={AIRFLOW_VERSION}"],
                           capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return str(python)


def _dagbag(python: str, dag_text: str, tmp_path: Path) -> dict:
    """``dag_text`` (as infra/airflow/strata_nightly.py) loaded by Airflow's own DagBag, in ``python``
    (tests/infra/airflow_dagbag.py), with a throwaway AIRFLOW_HOME."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / DAG_FILE.name).write_text(dag_text)
    result = tmp_path / "dagbag.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "AIRFLOW"))}
    env.update(AIRFLOW_HOME=str(tmp_path / "home"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=str(dags))
    r = subprocess.run([python, str(Path(__file__).with_name("airflow_dagbag.py")), str(dags / DAG_FILE.name),
                        str(result)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(result.read_text())


def test_airflow_dag_loads_in_a_real_dagbag(request, tmp_path):
    """The DAG file parsed by Airflow's own DagBag (in its own Python: Airflow is not a dependency of strata),
    its structure read back, and every bash_command rendered by Airflow's Jinja checked like the stub's."""
    bag = _dagbag(_airflow_python(request), DAG_FILE.read_text(), tmp_path)
    assert bag["import_errors"] == {}, bag["import_errors"]
    dag = bag["dags"]["strata_nightly"]
    assert dag["schedule"] == "0 2 * * *" and dag["catchup"] is False and dag["max_active_runs"] == 1
    tasks = dag["tasks"]
    assert [t["task_id"] for t in tasks] == NIGHTLY
    assert [t["upstream"] for t in tasks] == [[]] + [[prev] for prev in NIGHTLY[:-1]]
    assert all(t["operator"].endswith(".BashOperator") and t["retries"] >= 1 for t in tasks)
    _check_submits([(t["task_id"], t["bash_command"]) for t in tasks])


def test_real_dagbag_reports_a_broken_dag(request, tmp_path):
    """A misspelt DAG argument is an import error for the real DagBag: the check can fail."""
    text = DAG_FILE.read_text()
    assert "    max_active_runs=1,\n" in text
    bag = _dagbag(_airflow_python(request), text.replace("    max_active_runs=1,\n", "    max_active_run=1,\n"),
                  tmp_path)
    assert "strata_nightly" not in bag["dags"]
    assert [e for e in bag["import_errors"].values() if "max_active_run" in e], bag["import_errors"]


# -- entry points named anywhere in infra/ --------------------------------------------------------------
_JOB_RE = re.compile(r"(?:^|/)(jobs/[A-Za-z0-9_]+\.py)$")


def collect_entry_points() -> dict[str, set[str]]:
    """jobs/<x>.py -> the infra files naming it (from their parsed structure)."""
    found: dict[str, set[str]] = {}

    def add(job: str, src: Path) -> None:
        found.setdefault(job, set()).add(str(src.relative_to(REPO)))

    _, where = _bundle()
    for key, f in where.items():
        job = yaml.safe_load(f.read_text())["resources"]["jobs"][key]
        for t in job["tasks"]:
            py = (f.parent / t["spark_python_task"]["python_file"]).resolve()
            add(py.relative_to(REPO).as_posix() if py.is_relative_to(REPO) else str(py), f)
    for path, doc in _manifests():
        if doc["kind"] == "RayJob":
            for tok in shlex.split(doc["spec"]["entrypoint"]):
                m = _JOB_RE.search(tok)
                if m:
                    add(m.group(1), path)
    tree, _ = _dag_ast()
    for step in _assigned(tree, "STEPS"):
        add(ops.job_file(step), DAG_FILE)
    cfg = yaml.safe_load(CLUSTER_YAML.read_text())
    for cmd in [c for k, v in cfg.items() if k.endswith("_commands") for c in v]:
        for tok in shlex.split(cmd):
            m = _JOB_RE.search(tok)
            if m:
                add(m.group(1), CLUSTER_YAML)
    return found


_ENTRY_POINTS = collect_entry_points()


def test_entry_points_collected_from_every_orchestrator():
    sources = {s for v in _ENTRY_POINTS.values() for s in v}
    assert any("databricks" in s for s in sources) and any("kuberay" in s for s in sources)
    assert any("airflow" in s for s in sources)
    assert set(ops.JOBS.values()) <= set(_ENTRY_POINTS)


def _param(job: str):
    if job in PENDING:
        return pytest.param(job, id=job, marks=pytest.mark.xfail(
            strict=False, reason="command lands with issue 5/6/8"))
    return pytest.param(job, id=job)


@pytest.mark.parametrize("job", [_param(j) for j in sorted(_ENTRY_POINTS)])
def test_entry_point_exists_and_runs_help(job):
    path = REPO / job
    assert path.is_file(), f"{job} named by {sorted(_ENTRY_POINTS[job])} does not exist"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120,
                       env=env, cwd=str(REPO / "jobs"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Usage: strata {COMMAND_OF[job]}" in " ".join(r.stdout.split())


# -- the options each infra file passes: accepted by the stage's command, the infra profile, durable state --
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def _resolve(arg: str, known: dict[str, str]) -> str:
    """Templated values -> their defaults (``known``: Databricks ``job.parameters.x`` -> the parameter's default
    with its ``${var.x}`` resolved to the bundle variable's default; Airflow ``params.x`` -> the DAG's param);
    a value known only at run time (``{{job.start_time.iso_date}}``, ``{{ ds }}``) -> ``<run:NAME>``."""
    return _TEMPLATE.sub(lambda m: known.get(m.group(1), f"<run:{m.group(1)}>"), arg)


class Invocation(NamedTuple):
    src: str  # file:task
    group: str  # the job / DAG / manifest it belongs to
    job: str  # jobs/<x>.py
    argv: list[str]  # what it passes to the entry point, templates resolved


def collect_invocations() -> list[Invocation]:
    """Every Databricks task, RayJob entrypoint and Airflow task, with the argv it passes."""
    out: list[Invocation] = []
    b, where = _bundle()
    bundle_vars = {k: str(v.get("default", "")) for k, v in b["variables"].items()}
    for key, f in where.items():
        job = yaml.safe_load(f.read_text())["resources"]["jobs"][key]
        known = {f"job.parameters.{p['name']}": re.sub(r"\$\{var\.(\w+)\}", lambda m: bundle_vars[m.group(1)],
                                                        str(p["default"])) for p in job.get("parameters", [])}
        for t in job["tasks"]:
            py = (f.parent / t["spark_python_task"]["python_file"]).resolve().relative_to(REPO).as_posix()
            out.append(Invocation(f"{f.relative_to(INFRA)}:{t['task_key']}", f"{f.relative_to(INFRA)}:{key}", py,
                                  [_resolve(a, known) for a in t["spark_python_task"].get("parameters", [])]))
    for path, doc in _manifests():
        if doc["kind"] == "RayJob":
            toks = shlex.split(doc["spec"]["entrypoint"])
            i = next(i for i, t in enumerate(toks) if _JOB_RE.search(t))
            src = str(path.relative_to(INFRA))
            out.append(Invocation(src, src, _JOB_RE.search(toks[i]).group(1), toks[i + 1:]))
    tree, dag = _dag_ast()
    params = ast.literal_eval({k.arg: k.value for k in dag.keywords}["params"])
    known = {f"params.{k}": str(v) for k, v in params.items()}
    submit = _assigned(tree, "SUBMIT")
    for step in _assigned(tree, "STEPS"):
        after = submit.format(step=step).split(" -- ", 1)[1]  # the options passed to the entry point
        out.append(Invocation(f"airflow:{step}", "airflow", ops.job_file(step),
                              ops.job_args(step, shlex.split(_resolve(after, known)))))
    return out


def _cli_command(name: str):
    import typer

    from strata.cli import app

    return typer.main.get_command(app).commands[name]


def _inv_param(inv: Invocation):
    marks = [pytest.mark.xfail(strict=False, reason="command lands with issue 5/6/8")] if inv.job in PENDING else []
    return pytest.param(inv.job, inv.argv, id=f"{inv.src}->{inv.job}", marks=marks)


_INVOCATIONS = [_inv_param(inv) for inv in collect_invocations()]


@pytest.mark.parametrize("job,argv", _INVOCATIONS)
def test_infra_arguments_parse_with_the_cli(job, argv):
    ctx = _cli_command(COMMAND_OF[job]).make_context(COMMAND_OF[job], list(argv))  # raises on unknown/missing
    for step in ctx.params.get("only") or []:  # a step of the graph that runs for the infra profile
        assert step in NIGHTLY, step


def durability_problems(command: str, argv: list[str]) -> list[str]:
    """Why a scheduled ``strata COMMAND ARGV`` would not run the infra profile on durable state: no
    ``--profile`` (the command's default, demo, would run) or another profile than the infra one; no ``--out``
    (a fresh ``runs/<profile>-<time>`` in the job's throwaway working directory) or a relative one; and for
    ``refresh``, whose folder holds the state, registry and index the next night starts from, an ``--out``
    that changes from run to run."""
    try:
        ctx = _cli_command(command).make_context(command, list(argv))
    except Exception as e:  # typer's (vendored) click UsageError: a missing required option, an unknown one
        return [e.format_message() if hasattr(e, "format_message") else str(e)]
    given = {n for n in ctx.params if ctx.get_parameter_source(n).name == "COMMANDLINE"}
    out = []
    if "profile" not in given:
        out.append("no --profile: the command's default profile would run")
    elif ctx.params["profile"] != INFRA_PROFILE:
        out.append(f"--profile {ctx.params['profile']}, not the infra profile {INFRA_PROFILE}")
    if "out" not in given:
        out.append("no --out: the state would land in a new runs/<profile>-<time> under the job's working dir")
    else:
        path = str(ctx.params["out"])
        if not (path.startswith("/") or re.match(r"^[a-z][a-z0-9+.-]*:/", path)):
            out.append(f"--out {path} is relative: it lands in the job's throwaway working dir")
        if command == "refresh" and "<run:" in path:
            out.append(f"--out {path} changes every run: refresh needs one fixed state folder")
    return out


@pytest.mark.parametrize("job,argv", _INVOCATIONS)
def test_every_job_passes_the_profile_and_a_durable_out(job, argv):
    assert durability_problems(COMMAND_OF[job], argv) == []


@pytest.mark.parametrize("command,argv,expect", [
    ("run", ["--only", "ingest"], ["no --profile", "no --out"]),
    ("run", ["--profile", "local", "--out", "/mnt/strata/runs/x"], ["--profile local"]),
    ("run", ["-p", "cluster", "-o", "runs/nightly"], ["is relative"]),
    ("refresh", ["--profile", "cluster", "--out", "/Volumes/strata/prod/state/<run:ds>"], ["changes every run"]),
    ("refresh", ["--profile", "cluster"], ["--out"]),  # refresh itself requires it
], ids=["bare", "other-profile", "relative-out", "refresh-per-night", "refresh-no-out"])
def test_durability_check_rejects_hand_made_cases(command, argv, expect):
    problems = durability_problems(command, argv)
    assert len(problems) == len(expect) and all(e in p for e, p in zip(expect, problems)), problems


def test_steps_of_one_schedule_share_their_run_folder():
    """`--only STEP` reads the earlier steps' outputs from RUN_DIR/state.json: one job's steps, one --out."""
    outs: dict[str, set[str]] = {}
    for inv in collect_invocations():
        if "--only" in inv.argv:
            outs.setdefault(inv.group, set()).add(inv.argv[inv.argv.index("--out") + 1])
    assert {"airflow", f"databricks/resources/{ops.NIGHTLY_JOB}.yml:{ops.NIGHTLY_JOB}"} <= set(outs)
    assert all(len(v) == 1 for v in outs.values()), outs
