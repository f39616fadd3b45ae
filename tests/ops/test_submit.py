"""``strata submit``: target parsing, the Ray payload (entrypoint, runtime_env, env vars by name only), the
Databricks and spark-submit command lines, and a real submission to a local Ray job server.

The real-Ray test needs the ``ray[default]`` extras (aiohttp_cors, opencensus, ...) that the project venv does
not install: it runs when they are importable, or when ``STRATA_RAY_DEFAULT_PATH`` names a folder holding them
(what ``ray[default]==2.60.0`` adds over the venv: ``python tests/tools/ensure_ray_default.py .venv/ray-default``,
which ``make test-cluster`` runs); otherwise it skips with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from strata.commands import submit as submit_cmd
from strata.ops import submit as ops

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _cb() -> None:  # a group, so `submit` stays a subcommand as in the real CLI
        pass

    submit_cmd.register(app)
    return app


# -- pure pieces -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,kind,address", [
    ("ray://head:10001", "ray", "http://head:8265"),
    ("ray://10.0.0.5", "ray", "http://10.0.0.5:8265"),
    ("ray://[fd00::1]:10001", "ray", "http://[fd00::1]:8265"),
    ("http://127.0.0.1:8265/", "ray", "http://127.0.0.1:8265"),
    ("https://ray.example.com", "ray", "https://ray.example.com"),
    ("databricks", "databricks", None),
    ("spark-submit", "spark-submit", None),
])
def test_parse_target(text, kind, address):
    t = ops.parse_target(text)
    assert (t.kind, t.address) == (kind, address)


def test_parse_target_dashboard_port_and_errors():
    assert ops.parse_target("ray://h:10001", dashboard_port=9999).address == "http://h:9999"
    for bad in ("yarn", "ray://", "h:8265"):
        with pytest.raises(ops.SubmitError):
            ops.parse_target(bad)


def test_every_step_of_the_graph_maps_to_the_one_entry_point():
    from strata.pipeline.graph import GRAPH

    for command, path in ops.JOBS.items():
        assert (REPO / path).is_file(), path
        assert f'run("{command}")' in (REPO / path).read_text(), path
    for s in GRAPH:
        assert ops.stage_command(s.name) == ("run", "--only", s.name)
        assert ops.job_file(s.name) == "jobs/run.py"
    assert ops.stage_command("all") == ("run",) and ops.stage_command("refresh") == ("refresh",)
    assert ops.entrypoint("judge-train", ["--out", "/r m"]) == "python jobs/run.py --only judge-train --out '/r m'"
    assert ops.entrypoint("refresh", ["--out", "/s"]) == "python jobs/refresh.py --out /s"
    with pytest.raises(ops.SubmitError, match="unknown stage"):
        ops.stage_command("nope")


def test_runtime_env_ships_repo_requirements_and_env_names_only(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-ship-me")
    monkeypatch.setenv("STRATA_DATA", "/local/only/path")
    env = ops.runtime_env(REPO, env_names=["OPENAI_API_KEY", "STRATA_DATA"])
    assert env["working_dir"] == str(REPO)
    assert ".venv/" in env["excludes"] and "runs/" in env["excludes"]
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert env["pip"] == project["dependencies"] + extras["cpu"] + extras["spark"]
    assert any(r.startswith("faiss-cpu") for r in env["pip"]) and not any("faiss-gpu" in r for r in env["pip"])
    # the Spark Connect client is an extra of its own now: a job without it could run no Spark step
    assert any(r.startswith("pyspark[connect]") for r in env["pip"]), env["pip"]
    assert env["env_vars"] == {"OPENAI_API_KEY": "${OPENAI_API_KEY}", "STRATA_DATA": "${STRATA_DATA}",
                               "STRATA_RAY_ADDRESS": "auto"}
    payload = json.dumps(env)
    assert "sk-do-not-ship-me" not in payload and "/local/only/path" not in payload
    assert "pip" not in ops.runtime_env(REPO, pip=False)


@pytest.mark.parametrize("bad", ["OPENAI_API_KEY=sk-123", "1BAD", "A-B"])
def test_env_by_name_rejects_values_and_bad_names(bad):
    with pytest.raises(ops.SubmitError):
        ops.env_by_name([bad])


def test_runtime_env_with_wheel(tmp_path):
    whl = tmp_path / "strata_retrieval-0.1.0-py3-none-any.whl"
    whl.write_bytes(b"PK")
    env = ops.runtime_env(REPO, wheel=whl, pip=False)
    assert env["py_modules"] == [str(whl)] and "lib/" in env["excludes"]
    with pytest.raises(ops.SubmitError, match="no such .whl"):
        ops.runtime_env(REPO, wheel=tmp_path / "missing.whl")
    with pytest.raises(ops.SubmitError, match="not a strata checkout"):
        ops.runtime_env(tmp_path)


# -- the Ray path up to the server, with a fake client -----------------------------------------------------
class FakeClient:
    def __init__(self, address, status="SUCCEEDED"):
        self.address, self.status, self.calls = address, status, []

    def submit_job(self, **kw):
        self.calls.append(kw)
        return "raysubmit_fake123"

    async def tail_job_logs(self, job_id):
        for chunk in ("line one\n", "line two\n"):
            yield chunk

    def get_job_status(self, job_id):
        from ray.job_submission import JobStatus

        return JobStatus(self.status)


def test_submit_ray_with_fake_client():
    clients, echoed, logs = [], [], []

    def factory(addr):
        clients.append(FakeClient(addr))
        return clients[-1]

    sub = ops.ray_submission("judge-train", ["--profile", "cluster", "--out", "/runs/n"], pip=False,
                             env_names=["HF_TOKEN"], submission_id="strata-judge-1")
    job_id, status = ops.submit_ray("http://head:8265", sub, client_factory=factory, echo=echoed.append,
                                    write_logs=logs.append)
    assert (job_id, status) == ("raysubmit_fake123", "SUCCEEDED")
    assert echoed[0] == "raysubmit_fake123" and "".join(logs) == "line one\nline two\n"
    (call,) = clients[0].calls
    assert clients[0].address == "http://head:8265"
    assert call["entrypoint"] == "python jobs/run.py --only judge-train --profile cluster --out /runs/n"
    assert call["submission_id"] == "strata-judge-1"
    assert call["metadata"] == {"strata_stage": "judge-train", "strata_command": "run --only judge-train"}
    assert call["runtime_env"]["env_vars"]["HF_TOKEN"] == "${HF_TOKEN}"

    no_follow = ops.submit_ray("http://h:1", sub, follow=False, client_factory=factory, echo=echoed.append)
    assert no_follow == ("raysubmit_fake123", "SUBMITTED")


def test_cli_ray_failure_exits_1(monkeypatch):
    orig = ops.submit_ray

    def patched(address, sub, **kw):
        return orig(address, sub, client_factory=lambda a: FakeClient(a, status="FAILED"), **kw)

    monkeypatch.setattr(ops, "submit_ray", patched)
    r = CliRunner().invoke(_app(), ["submit", "features", "--target", "ray://head", "--no-pip", "--",
                                    "--out", "/runs/n"])
    assert r.exit_code == 1, r.output
    assert "raysubmit_fake123" in r.output


def test_cli_usage_errors_exit_2():
    r = CliRunner().invoke(_app(), ["submit", "nope", "--target", "ray://head"])
    assert r.exit_code == 2 and "unknown stage" in r.output
    r = CliRunner().invoke(_app(), ["submit", "ingest", "--target", "yarn"])
    assert r.exit_code == 2 and "expected ray://" in r.output
    r = CliRunner().invoke(_app(), ["submit", "ingest", "--target", "ray://h", "--env", "TOKEN=abc"])
    assert r.exit_code == 2 and "by NAME only" in r.output


# -- databricks and spark-submit: real subprocesses of stand-in CLIs --------------------------------------
def _fake_cli(bin_dir: Path, name: str, record: Path) -> None:
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / name
    exe.write_text(textwrap.dedent(f"""\
        #!{PY}
        import json, os, sys
        with open({str(record)!r}, "w") as f:
            json.dump({{"argv": sys.argv[1:], "cwd": os.getcwd()}}, f)
        """))
    exe.chmod(0o755)


def test_databricks_bundle_run(tmp_path, monkeypatch):
    rec = tmp_path / "rec.json"
    _fake_cli(tmp_path / "bin", "databricks", rec)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    r = CliRunner().invoke(_app(), ["submit", "judge-train", "--target", "databricks", "--bundle-target", "prod",
                                    "--param", "lakehouse=/Volumes/x"])
    assert r.exit_code == 0, r.output
    got = json.loads(rec.read_text())
    assert got["argv"] == ["bundle", "run", "-t", "prod", "--params", "lakehouse=/Volumes/x", "--only",
                           "judge_train", "strata_nightly"]
    assert Path(got["cwd"]) == REPO / "infra" / "databricks"
    r = CliRunner().invoke(_app(), ["submit", "refresh", "--target", "databricks"])
    assert json.loads(rec.read_text())["argv"] == ["bundle", "run", "-t", "dev", "strata_refresh"]
    r = CliRunner().invoke(_app(), ["submit", "all", "--target", "databricks"])
    assert json.loads(rec.read_text())["argv"] == ["bundle", "run", "-t", "dev", "strata_nightly"]
    r = CliRunner().invoke(_app(), ["submit", "judge-train", "--target", "databricks", "--", "--limit", "3"])
    assert r.exit_code == 2 and "--param" in r.output


def test_databricks_cli_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    r = CliRunner().invoke(_app(), ["submit", "features", "--target", "databricks"])
    assert r.exit_code == 2 and "Databricks CLI" in r.output


def test_spark_submit(tmp_path, monkeypatch):
    rec = tmp_path / "rec.json"
    _fake_cli(tmp_path / "bin", "spark-submit", rec)
    monkeypatch.delenv("SPARK_HOME", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    seen = {}
    orig_zip = ops.zip_lib

    def keep_zip(repo, out_dir):
        z = orig_zip(repo, out_dir)
        seen["names"] = zipfile.ZipFile(z).namelist()
        return z

    monkeypatch.setattr(ops, "zip_lib", keep_zip)
    r = CliRunner().invoke(_app(), ["submit", "features", "--target", "spark-submit", "--master", "yarn",
                                    "--deploy-mode", "cluster", "--conf", "spark.executor.memory=8g", "--",
                                    "--out", "/runs/n"])
    assert r.exit_code == 0, r.output
    argv = json.loads(rec.read_text())["argv"]
    assert argv[:8] == ["--name", "strata-features", "--master", "yarn", "--deploy-mode", "cluster", "--conf",
                        "spark.executor.memory=8g"]
    py_files = argv[argv.index("--py-files") + 1].split(",")
    assert py_files[0].endswith("strata-lib.zip") and py_files[1] == str(REPO / "jobs" / "_entry.py")
    assert argv[-5:] == [str(REPO / "jobs" / "run.py"), "--only", "features", "--out", "/runs/n"]
    assert "strata/cli.py" in seen["names"] and "strata/profiles/demo.yaml" in seen["names"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = CliRunner().invoke(_app(), ["submit", "features", "--target", "spark-submit"])
    assert r.exit_code == 2 and "spark-submit not found" in r.output


# -- a real Ray job server ---------------------------------------------------------------------------------
def _ray_default_path() -> str | None:
    """'' when the extras are importable here, a folder holding them, or None (skip)."""
    try:
        import aiohttp  # noqa: F401
        import aiohttp_cors  # noqa: F401
        import opencensus  # noqa: F401

        return ""
    except ImportError:
        pass
    extra = os.environ.get("STRATA_RAY_DEFAULT_PATH")
    if extra and (Path(extra) / "aiohttp_cors").is_dir():  # the folder holds only what the venv lacks
        return extra
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_job_server(tmp_path_factory):
    """``ray start --head --block`` in its own process group on free ports, its own temp dir (so no other
    local ``ray.init()`` finds it) and no token auth; torn down by killing that process group only."""
    extra = _ray_default_path()
    if extra is None:
        pytest.skip("ray[default] extras (aiohttp_cors, opencensus, ...) not importable and STRATA_RAY_DEFAULT_PATH "
                    "unset: the Ray job server cannot start (`python tests/tools/ensure_ray_default.py "
                    ".venv/ray-default` installs them there; make test-cluster does)")
    temp = Path(f"/tmp/srj-{os.getpid()}")  # short: Ray's unix socket paths must stay < 108 chars
    temp.mkdir(exist_ok=True)
    dash, gcs, client = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # stop at SIGTERM, no drain of up to 30 s
           "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}",
           "STRATA_SUBMIT_PROBE": "cluster-side-value"}
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), extra) if p)
    log = open(tmp_path_factory.mktemp("ray") / "ray-start.log", "w")
    proc = subprocess.Popen(
        [str(Path(PY).parent / "ray"), "start", "--head", "--block", "--num-cpus", "1", "--port", str(gcs),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard", "true",
         "--ray-client-server-port", str(client), "--temp-dir", str(temp), "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    try:
        import urllib.request

        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                pytest.skip(f"ray start exited {proc.returncode}: see {log.name}")
            try:
                with urllib.request.urlopen(f"{address}/api/version", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.skip("Ray job server did not come up within 120 s")
            time.sleep(1)
        yield {"address": address, "extra": extra}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (agents, workers)
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)  # the session's logs, sockets and unpacked working_dirs


_DRIVER = textwrap.dedent("""\
    import sys, typer
    from strata.commands.submit import register
    app = typer.Typer()
    @app.callback()
    def _cb():
        pass
    register(app)
    app(sys.argv[1:], prog_name="strata")
    """)


def _strata_submit(server, *argv, env_extra=None):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env_extra or {})}
    if server["extra"]:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), server["extra"]) if p)
    return subprocess.run([PY, "-c", _DRIVER, "submit", *argv], env=env, capture_output=True, text=True,
                          timeout=300, cwd=str(REPO))


def test_real_ray_job_runs_the_entry_point(ray_job_server):
    r = _strata_submit(ray_job_server, "features", "--target", ray_job_server["address"], "--no-pip",
                       "--env", "STRATA_SUBMIT_PROBE", "--", "--help")
    assert r.returncode == 0, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("raysubmit_"), r.stdout  # the job id comes first, then the followed logs
    assert "Usage: strata run" in r.stdout  # a graph step runs as `jobs/run.py --only STEP`
    assert "SUCCEEDED" in r.stderr


def test_real_ray_job_failure_and_env_by_name(ray_job_server):
    # A bad stage option: the job's `strata features` exits 2, the job FAILS, the submit exits 1.
    r = _strata_submit(ray_job_server, "features", "--target", ray_job_server["address"], "--no-pip", "--",
                       "--no-such-option")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED" in r.stderr and "No such option" in r.stdout

    # Env by name: the value comes from the cluster node, the client's value never travels.
    script = textwrap.dedent(f"""\
        import json
        from strata.ops import submit as ops
        sub = ops.ray_submission("features", pip=False, env_names=["STRATA_SUBMIT_PROBE"])
        sub.entrypoint = 'python -c "import os; print(\\\\"probe=\\\\" + os.environ[\\\\"STRATA_SUBMIT_PROBE\\\\"])"'
        print("payload=" + json.dumps(sub.runtime_env))
        job_id, status = ops.submit_ray({ray_job_server["address"]!r}, sub)
        print("status=" + status)
        """)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "STRATA_SUBMIT_PROBE": "client-side-secret"}
    if ray_job_server["extra"]:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), ray_job_server["extra"])
                                            if p)
    p = subprocess.run([PY, "-c", script], env=env, capture_output=True, text=True, timeout=300, cwd=str(REPO))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "probe=cluster-side-value" in p.stdout and "status=SUCCEEDED" in p.stdout
    assert "client-side-secret" not in p.stdout


def test_a_ray_job_driver_runs_from_a_private_copy_of_its_working_dir(tmp_path, monkeypatch):
    """Ray may delete and unpack a job's working_dir again while the job runs (seen on the local cluster: the
    refresh's evaluate step failed in os.getcwd() after training): the entry point moves the driver to a copy."""
    import importlib.util
    import shutil

    pkg = tmp_path / "runtime_resources" / "working_dir_files" / "_ray_pkg_abc"
    shutil.copytree(REPO / "jobs", pkg / "jobs")
    (pkg / "lib").mkdir()
    (pkg / "configs").mkdir()
    (pkg / "configs" / "nightly.yaml").write_text("profile: demo\n")
    spec = importlib.util.spec_from_file_location("strata_job_entry", pkg / "jobs" / "_entry.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    monkeypatch.chdir(pkg)
    root = entry._private_working_dir(pkg)
    assert root != pkg and Path.cwd() == root and (root / "jobs" / "_entry.py").is_file()
    shutil.rmtree(pkg)  # what Ray's runtime-env agent does with overwrite=True
    assert Path("configs/nightly.yaml").read_text() == "profile: demo\n"  # relative paths still resolve
    assert Path.cwd() == root
    monkeypatch.chdir(tmp_path)
    assert entry._private_working_dir(tmp_path) == tmp_path  # anywhere else: nothing moves
