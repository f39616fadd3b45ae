"""``strata submit``: run one step of the stage graph, the whole graph, or the refresh on a cluster.

What runs is always ``jobs/run.py`` (``strata run``; ``--only STEP`` for one step) or ``jobs/refresh.py``
(``strata refresh``), the same commands a user runs locally; the steps are the graph's
(``strata.pipeline.graph``). Three targets:

- ``ray://HEAD[:10001]`` or ``http(s)://HEAD:8265``: Ray Jobs. The repo is shipped as the job's
  ``working_dir`` (or a built wheel as a ``py_modules`` entry), the ``pip`` list is the package's own
  requirements from ``pyproject.toml``, and the job id is printed before its logs are followed.
- ``databricks``: ``databricks bundle run`` of the bundle in ``infra/databricks`` (the Databricks CLI).
- ``spark-submit``: ``spark-submit jobs/<stage>.py`` with ``lib/`` zipped as ``--py-files``.

Environment variables are passed **by name**: the Ray payload carries ``NAME: "${NAME}"``, which Ray expands
from the cluster node's own environment when the job starts (a Kubernetes Secret, an instance profile, ...),
so no value, secret or not, ever leaves this machine inside the job description. The same holds for the
other places a value could ride along: stage arguments, Databricks ``--param`` and spark-submit ``--conf``
items whose key looks like a secret (``api_key=``, ``...secret.key=``, ``token=``) or whose value is a URL with
credentials are refused (a ``{{secrets/scope/key}}`` or ``${NAME}`` reference is fine), because they would be
stored in the job server's job table, the run's parameters, or echoed to the terminal.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from strata.secret_policy import is_secret_name, url_credential

REPO = Path(__file__).resolve().parents[3]

# What `strata submit` takes besides a step of the graph: the whole graph, and the nightly refresh.
WHOLE_GRAPH, REFRESH = "all", "refresh"
JOBS = {"run": "jobs/run.py", "refresh": "jobs/refresh.py"}

# Never shipped to the job server: environments, outputs, caches, VCS.
WORKING_DIR_EXCLUDES = [
    ".venv/", "venv/", ".git/", "runs/", "dist/", "build/", "mlruns/", "**/__pycache__/", "*.egg-info/",
    ".pytest_cache/", ".ruff_cache/", "*.pyc", "bench/", "notebooks/", "infra/",
]
# Set in every Ray job: the driver joins the cluster it runs on instead of starting a local Ray.
JOB_ENV = {"STRATA_RAY_ADDRESS": "auto"}
# Forwarded by name when no --env is given (only names; Ray expands them on the cluster).
DEFAULT_ENV_NAMES = ("STRATA_DATA", "STRATA_SPARK_REMOTE", "HF_HUB_OFFLINE")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_VALUE = re.compile(r"(?:^|[\s,;])-*([A-Za-z0-9_.\-]+)=([^,;\s]*)")
_REFERENCE = re.compile(r"^(?:\{\{\s*secrets/[^}]+\}\}|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*)$")
_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class SubmitError(ValueError):
    """Bad target, stage or option: exit 2 with this message."""


@dataclass(frozen=True)
class Target:
    kind: str  # ray | databricks | spark-submit
    address: Optional[str] = None  # Ray: the job server (dashboard) HTTP address


def parse_target(text: str, dashboard_port: int = 8265) -> Target:
    """``ray://HOST[:PORT]`` -> the dashboard on HOST:dashboard_port (the Jobs API is served there, not on the
    Ray Client port); ``http(s)://HOST:PORT`` as given; ``databricks``; ``spark-submit``."""
    t = text.strip()
    if t in ("databricks", "spark-submit"):
        return Target(t)
    if t.startswith("ray://"):
        host = t[len("ray://"):].split("/", 1)[0]
        if host.startswith("["):  # [IPv6]:port
            host = host.split("]", 1)[0] + "]"
        elif host.count(":") == 1:
            host = host.rsplit(":", 1)[0]
        if not host:
            raise SubmitError(f"--target {text!r}: no host in the ray:// address")
        return Target("ray", f"http://{host}:{dashboard_port}")
    if t.startswith(("http://", "https://")):
        return Target("ray", t.rstrip("/"))
    raise SubmitError(f"--target {text!r}: expected ray://HOST[:PORT], http(s)://HOST:8265, databricks or "
                      "spark-submit")


def stage_command(stage: str) -> tuple[str, ...]:
    """The `strata` words a submitted stage runs: a graph step is ``run --only STEP``, ``all`` is ``run``,
    ``refresh`` is ``refresh``."""
    from strata.pipeline.graph import STEPS

    if stage == REFRESH:
        return ("refresh",)
    if stage == WHOLE_GRAPH:
        return ("run",)
    if stage in STEPS:
        return ("run", "--only", stage)
    raise SubmitError(f"unknown stage {stage!r} (a step of the graph: {', '.join(STEPS)}; or {WHOLE_GRAPH}, "
                      f"{REFRESH})")


def job_file(stage: str) -> str:
    """The entry point of a stage, relative to the repo root (``jobs/run.py`` or ``jobs/refresh.py``)."""
    return JOBS[stage_command(stage)[0]]


def job_args(stage: str, args: Sequence[str] = ()) -> list[str]:
    """The entry point's argv for ``stage``: the step selection, then the user's own options."""
    return [*stage_command(stage)[1:], *args]


def entrypoint(stage: str, args: Sequence[str] = (), python: str = "python") -> str:
    """The shell command a Ray job runs, from the working_dir root: ``python jobs/run.py --only STEP ARGS``."""
    refuse_secret_values(args, "stage argument")
    return shlex.join([python, job_file(stage), *job_args(stage, args)])


# The extras a Ray job's pip list adds to [project].dependencies: the FAISS build (``cpu`` unless the cluster
# image brings ``gpu``) and Spark (``spark``: the Spark Connect client every Spark step uses).
JOB_EXTRAS = ("cpu", "spark")


def requirements(pyproject: Path = REPO / "pyproject.toml", extras: Sequence[str] = JOB_EXTRAS) -> list[str]:
    """The package's own runtime requirements ([project].dependencies) plus those of ``extras``."""
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    out = list(project["dependencies"])
    for extra in extras:
        if extra not in project.get("optional-dependencies", {}):
            raise SubmitError(f"no extra {extra!r} in {pyproject}")
        out += project["optional-dependencies"][extra]
    return out


def refuse_secret_values(items: Iterable[str], what: str) -> None:
    """``SubmitError`` if an argument/parameter carries a literal secret: ``KEY=VALUE`` with a key-like KEY
    (its last dotted part, so ``judge.api_key_env=NAME`` is fine) and a VALUE that is not a reference, or a
    URL with credentials. The message never shows the value."""
    for item in items:
        text = str(item)
        for key, value in _KEY_VALUE.findall(text):
            if is_secret_name(key) and value and not _REFERENCE.match(value):
                raise SubmitError(
                    f"{what} {key}=...: a secret as a literal value would be stored with the job (and echoed); "
                    "set it in the cluster's environment or a secret scope and pass it by name (--env NAME; "
                    "Databricks: {{secrets/<scope>/<key>}}). The value is not shown")
        words = re.split(r"[\s,]+", text)
        for word in words + [w.split("=", 1)[1] for w in words if "=" in w]:
            if url_credential(word):
                raise SubmitError(f"{what}: a URL with credentials would be stored with the job; put the "
                                  "credentials in the cluster's environment instead. The value is not shown")


def env_by_name(names: Iterable[str]) -> dict[str, str]:
    """``{NAME: "${NAME}"}``: Ray expands each reference from the node's environment when the job starts
    (unset -> empty), so the payload names variables and never carries a value."""
    out: dict[str, str] = {}
    for name in names:
        if "=" in name:
            raise SubmitError(f"--env {name.split('=', 1)[0]}=...: pass variables by NAME only; the value is "
                              "read on the cluster (set it there, e.g. from a Kubernetes Secret)")
        if not _NAME.match(name):
            raise SubmitError(f"--env {name!r}: not an environment variable name")
        out[name] = "${" + name + "}"
    return out


def runtime_env(
    repo: Path = REPO,
    *,
    wheel: Optional[Path] = None,
    pip: bool = True,
    env_names: Iterable[str] = DEFAULT_ENV_NAMES,
    pyproject: Optional[Path] = None,
) -> dict[str, Any]:
    """The Ray ``runtime_env`` of a job: the checkout as working_dir (jobs/ + lib/), or with ``wheel`` the
    jobs/ folder plus the wheel as a ``py_modules`` entry; the pyproject requirements as ``pip`` unless the
    cluster image already has them (``pip=False``); env vars by name only."""
    repo = Path(repo).resolve()
    if not (repo / "jobs" / "_entry.py").is_file():
        raise SubmitError(f"{repo}: not a strata checkout (no jobs/_entry.py)")
    env: dict[str, Any] = {"working_dir": str(repo), "excludes": list(WORKING_DIR_EXCLUDES)}
    if wheel is not None:
        wheel = Path(wheel).resolve()
        if wheel.suffix != ".whl" or not wheel.is_file():
            raise SubmitError(f"--wheel {wheel}: no such .whl file (build one with `python -m build --wheel`)")
        env["excludes"].append("lib/")  # jobs/_entry.py falls back to the installed package
        env["py_modules"] = [str(wheel)]
    if pip:
        env["pip"] = requirements(pyproject or repo / "pyproject.toml")
    env["env_vars"] = {**env_by_name(env_names), **JOB_ENV}
    return env


@dataclass
class RaySubmission:
    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    submission_id: Optional[str] = None


def ray_submission(
    stage: str,
    args: Sequence[str] = (),
    *,
    repo: Path = REPO,
    wheel: Optional[Path] = None,
    pip: bool = True,
    env_names: Iterable[str] = DEFAULT_ENV_NAMES,
    submission_id: Optional[str] = None,
) -> RaySubmission:
    return RaySubmission(
        entrypoint=entrypoint(stage, args),
        runtime_env=runtime_env(repo, wheel=wheel, pip=pip, env_names=env_names),
        metadata={"strata_stage": stage, "strata_command": " ".join(stage_command(stage))},
        submission_id=submission_id,
    )


def _default_client(address: str) -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as e:  # pragma: no cover - ray is a dependency
        raise SubmitError(f"Ray Jobs SDK unavailable: {e}") from None
    try:
        return JobSubmissionClient(address)
    except RuntimeError as e:
        if "ray[default]" in str(e):
            raise SubmitError("the Ray Jobs SDK needs the ray[default] extras on this machine: "
                              "pip install 'ray[default]==2.60.0'") from None
        raise


async def _follow(client: Any, job_id: str, write: Callable[[str], Any]) -> None:
    async for lines in client.tail_job_logs(job_id):
        write(lines)


def submit_ray(
    address: str,
    sub: RaySubmission,
    *,
    follow: bool = True,
    client_factory: Callable[[str], Any] = _default_client,
    echo: Callable[[str], Any] = print,
    write_logs: Callable[[str], Any] = lambda s: (sys.stdout.write(s), sys.stdout.flush()),
) -> tuple[str, str]:
    """Submit to the Ray job server at ``address``; print the job id; follow its logs until it ends.
    Returns ``(job_id, final status)`` (status ``"SUBMITTED"`` when not following)."""
    client = client_factory(address)
    kwargs: dict[str, Any] = {"entrypoint": sub.entrypoint, "runtime_env": sub.runtime_env,
                              "metadata": sub.metadata}
    if sub.submission_id:
        kwargs["submission_id"] = sub.submission_id
    job_id = client.submit_job(**kwargs)
    echo(job_id)
    if not follow:
        return job_id, "SUBMITTED"
    try:
        asyncio.run(_follow(client, job_id, write_logs))
    except KeyboardInterrupt:
        echo(f"stopped following; the job keeps running (ray job stop {job_id} --address {address})")
        return job_id, "RUNNING"
    # tail_job_logs ends when the job does; a slow status update may still say RUNNING for a moment.
    status = _status(client, job_id)
    for _ in range(20):
        if status in _TERMINAL:
            break
        time.sleep(0.5)
        status = _status(client, job_id)
    return job_id, status


def _status(client: Any, job_id: str) -> str:
    st = client.get_job_status(job_id)
    return str(getattr(st, "value", st))


# -- Databricks --------------------------------------------------------------------------------------------
BUNDLE_DIR = REPO / "infra" / "databricks"
NIGHTLY_JOB = "strata_nightly"
REFRESH_JOB = "strata_refresh"


def databricks_command(stage: str, bundle_target: str = "dev", params: Mapping[str, str] | None = None,
                       cli: str = "databricks") -> list[str]:
    """``databricks bundle run``: ``refresh`` is its own one-task job; ``all`` is the nightly job (one task per
    step of the graph, rendered by ``strata infra render``); a step runs that task of the nightly job alone
    (``--only``). Job parameters (``--params k=v,...``) override the bundle defaults."""
    from strata.pipeline.graph import STEPS

    stage_command(stage)
    refuse_secret_values([f"{k}={v}" for k, v in (params or {}).items()], "--param")
    if stage == REFRESH:
        cmd = [cli, "bundle", "run", "-t", bundle_target, REFRESH_JOB]
    elif stage == WHOLE_GRAPH:
        cmd = [cli, "bundle", "run", "-t", bundle_target, NIGHTLY_JOB]
    else:
        cmd = [cli, "bundle", "run", "-t", bundle_target, "--only", STEPS[stage].task_key, NIGHTLY_JOB]
    if params:
        cmd[5:5] = ["--params", ",".join(f"{k}={v}" for k, v in params.items())]
    return cmd


def find_databricks_cli() -> str:
    cli = shutil.which("databricks")
    if cli is None:
        raise SubmitError("the Databricks CLI (`databricks`, v0.218+ with bundle support) is not on PATH: "
                          "install it (https://docs.databricks.com/dev-tools/cli/install.html), then "
                          "`databricks auth login`, then `databricks bundle deploy -t dev` in infra/databricks")
    return cli


def submit_databricks(stage: str, bundle_target: str = "dev", params: Mapping[str, str] | None = None,
                      bundle_dir: Path = BUNDLE_DIR, runner: Callable[..., Any] = subprocess.run) -> int:
    cmd = databricks_command(stage, bundle_target, params, cli=find_databricks_cli())
    print(shlex.join(cmd), file=sys.stderr)
    return runner(cmd, cwd=str(bundle_dir)).returncode


# -- spark-submit ------------------------------------------------------------------------------------------
def find_spark_submit() -> str:
    home = os.environ.get("SPARK_HOME")
    cand = Path(home) / "bin" / "spark-submit" if home else None
    if cand is not None and cand.is_file():
        return str(cand)
    found = shutil.which("spark-submit")
    if found is None:
        raise SubmitError("spark-submit not found: set SPARK_HOME or put spark-submit on PATH")
    return found


def zip_lib(repo: Path, out_dir: Path) -> Path:
    """``lib/strata`` (sources + package data) as a zip for ``--py-files``."""
    out = Path(out_dir) / "strata-lib.zip"
    lib = Path(repo) / "lib"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted((lib / "strata").rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                z.write(p, p.relative_to(lib).as_posix())
    return out


def spark_submit_command(stage: str, args: Sequence[str] = (), *, repo: Path = REPO, py_files: Sequence[str] = (),
                         master: Optional[str] = None, deploy_mode: Optional[str] = None,
                         conf: Sequence[str] = (), spark_submit: str = "spark-submit") -> list[str]:
    repo = Path(repo)
    cmd = [spark_submit, "--name", f"strata-{stage}"]
    if master:
        cmd += ["--master", master]
    if deploy_mode:
        cmd += ["--deploy-mode", deploy_mode]
    refuse_secret_values(conf, "--conf")
    refuse_secret_values(args, "stage argument")
    for c in conf:
        if "=" not in c:
            raise SubmitError(f"--conf {c!r}: expected KEY=VALUE")
        cmd += ["--conf", c]
    files = [*py_files, str(repo / "jobs" / "_entry.py")]
    cmd += ["--py-files", ",".join(files), str(repo / job_file(stage)), *job_args(stage, args)]
    return cmd


def submit_spark(stage: str, args: Sequence[str] = (), *, repo: Path = REPO, master: Optional[str] = None,
                 deploy_mode: Optional[str] = None, conf: Sequence[str] = (),
                 runner: Callable[..., Any] = subprocess.run) -> int:
    exe = find_spark_submit()
    stage_command(stage)
    if not (Path(repo) / "jobs" / "_entry.py").is_file() or not (Path(repo) / "lib" / "strata").is_dir():
        raise SubmitError(f"{repo}: not a strata checkout (needs jobs/ and lib/strata)")
    with tempfile.TemporaryDirectory(prefix="strata-submit-") as tmp:
        lib_zip = zip_lib(repo, Path(tmp))
        cmd = spark_submit_command(stage, args, repo=repo, py_files=[str(lib_zip)], master=master,
                                   deploy_mode=deploy_mode, conf=conf, spark_submit=exe)
        print(shlex.join(cmd), file=sys.stderr)
        return runner(cmd).returncode
