"""infra/: every file parses; the bundle, the KubeRay manifests, the Ray cluster config and the Airflow DAG
pass the schema checks available offline; every entry point they name exists and runs ``--help``.

Entry points are collected from the parsed files themselves (Databricks ``spark_python_task.python_file``,
RayJob ``entrypoint``, the stages the Airflow DAG submits, any ``jobs/*.py`` the Ray cluster config runs), so
a new task in any of them is covered without touching this test.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

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

_spec = importlib.util.spec_from_file_location("strata_infra_schemas", Path(__file__).with_name("schemas.py"))
schemas = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(schemas)

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


def test_bundle_schema_and_references():
    b, where = _bundle()
    jsonschema.validate(b, schemas.DATABRICKS_BUNDLE)
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


def test_kuberay_manifests_schema():
    import ray

    names = {d["metadata"]["name"] for _, d in _manifests() if d["kind"] == "RayCluster"}
    for path, doc in _manifests():
        jsonschema.validate(doc, {"RayCluster": schemas.RAYCLUSTER, "RayJob": schemas.RAYJOB}[doc["kind"]])
        spec = _cluster_specs(doc)
        if doc["kind"] == "RayJob":
            assert isinstance(yaml.safe_load(doc["spec"].get("runtimeEnvYAML", "{}")), dict)
            if "clusterSelector" in doc["spec"]:
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


# -- Airflow DAG (AST: airflow is too heavy to install for a test) --------------------------------------
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


def test_airflow_dag_with_stub_renders_valid_submits(monkeypatch):
    import typer

    from strata.commands import submit as submit_cmd

    dag = _import_dag_with_stub(monkeypatch)
    assert [t.task_id for t in dag.tasks] == NIGHTLY
    for a, b in zip(dag.tasks, dag.tasks[1:]):
        assert a.downstream == [b.task_id]
    assert dag.kw["catchup"] is False and dag.kw["default_args"]["retries"] >= 1

    app = typer.Typer()

    @app.callback()
    def _cb() -> None:
        pass

    submit_cmd.register(app)
    group = typer.main.get_command(app)
    for t in dag.tasks:
        argv = shlex.split(_render(t.bash_command, dag.kw["params"]))
        assert argv[:3] == ["strata", "submit", t.task_id]
        sctx = group.commands["submit"].make_context("submit", argv[2:])  # raises on a bad option
        assert sctx.params["stage"] == t.task_id and ops.parse_target(sctx.params["target"]).kind == "ray"
        assert sctx.params["pip"] is False


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


# -- the options each infra file passes are options the stage's command accepts ------------------------
def _dummy(arg: str) -> str:
    """Templated values (Databricks {{job.parameters.x}}, Airflow {{ params.x }}) -> a plain placeholder."""
    return re.sub(r"\{\{[^}]*\}\}", "X", arg)


def collect_invocations() -> list[tuple[str, str, list[str]]]:
    """(infra file, jobs/<x>.py, the argv it passes) for every task/entrypoint/DAG task."""
    out: list[tuple[str, str, list[str]]] = []
    _, where = _bundle()
    for key, f in where.items():
        job = yaml.safe_load(f.read_text())["resources"]["jobs"][key]
        for t in job["tasks"]:
            py = (f.parent / t["spark_python_task"]["python_file"]).resolve().relative_to(REPO).as_posix()
            out.append((f"{f.relative_to(INFRA)}:{t['task_key']}", py,
                        [_dummy(a) for a in t["spark_python_task"].get("parameters", [])]))
    for path, doc in _manifests():
        if doc["kind"] == "RayJob":
            toks = shlex.split(doc["spec"]["entrypoint"])
            i = next(i for i, t in enumerate(toks) if _JOB_RE.search(t))
            out.append((f"{path.relative_to(INFRA)}", _JOB_RE.search(toks[i]).group(1), toks[i + 1:]))
    tree, _ = _dag_ast()
    submit = _assigned(tree, "SUBMIT")
    for step in _assigned(tree, "STEPS"):
        after = _dummy(submit.format(step=step)).split(" -- ", 1)[1]  # the options passed to the entry point
        out.append((f"airflow:{step}", ops.job_file(step), ops.job_args(step, shlex.split(after))))
    return out


def _inv_param(src: str, job: str, argv: list[str]):
    marks = [pytest.mark.xfail(strict=False, reason="command lands with issue 5/6/8")] if job in PENDING else []
    return pytest.param(job, argv, id=f"{src}->{job}", marks=marks)


@pytest.mark.parametrize("job,argv", [_inv_param(*inv) for inv in collect_invocations()])
def test_infra_arguments_parse_with_the_cli(job, argv):
    import typer

    from strata.cli import app

    cmd = typer.main.get_command(app).commands[COMMAND_OF[job]]
    ctx = cmd.make_context(COMMAND_OF[job], list(argv))  # raises on unknown/missing options
    for step in ctx.params.get("only") or []:  # a step of the graph that runs for the infra profile
        assert step in NIGHTLY, step
