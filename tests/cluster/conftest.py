"""A real, local, multi-process cluster for the tests in this folder: a standalone Sail Spark Connect server and
a two-node Ray cluster, each in processes of its own on loopback addresses, started once per session and
stopped at its end. When the ``ray[default]`` extras are at hand (importable, or in the folder
STRATA_RAY_DEFAULT_PATH names: ``make test-cluster`` installs them into .venv/ray-default), the head node also
runs the dashboard, and with it the Ray Jobs server (``ray_job_server``), on a free loopback port.

Only what these fixtures started is ever stopped: every process is started in a new session (its own process
group), and teardown signals those processes and the descendants they had (collected before the signal), never
by name. ``ray stop`` is not used: it stops every Ray process of the user, other engineers' local clusters
included. Every wait is bounded; a component that cannot start skips the tests that need it, with the reason
and the tail of its log.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
START_TIMEOUT_S = float(os.environ.get("STRATA_CLUSTER_START_TIMEOUT", "120"))
STOP_GRACE_S = 20.0
KEEP = os.environ.get("STRATA_CLUSTER_KEEP_LOGS") == "1"  # leave Ray's temp dir (its logs) for a post-mortem
TIMINGS: dict[str, float] = {}  # fixture start/stop seconds, printed at the end of the session


def free_port() -> int:
    """A port nothing listens on now (loopback). Another process may take it before it is used: the fixtures
    bind it within seconds, and a lost race shows as a start failure with a clear message."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def log_tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def wait_until(check, timeout: float, proc: subprocess.Popen | None = None, every: float = 0.5) -> bool:
    """Poll ``check()`` until it is true (True), ``timeout`` passes or ``proc`` exits (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(check())
        time.sleep(every)
    return False


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``cmd`` in a new session (its own process group, no terminal), output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)


def stop(procs: list[subprocess.Popen], grace: float = STOP_GRACE_S, extra=lambda: []) -> None:
    """SIGTERM each of ``procs`` at once, wait up to ``grace`` seconds for them, then SIGKILL whatever is left of
    them, of their process groups and of every descendant they had when this began, plus ``extra()`` (a list of
    psutil processes the caller knows are its own). Nothing is matched by name."""
    import psutil

    own: dict[int, psutil.Process] = {}
    for p in procs:
        try:
            root = psutil.Process(p.pid)
            own[root.pid] = root
            own.update({c.pid: c for c in root.children(recursive=True)})
        except psutil.NoSuchProcess:
            pass
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        try:  # the process group each one leads (a node's helpers stay in it)
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    own.update({q.pid: q for q in extra()})
    left = [q for q in own.values() if _alive(q)]
    for q in left:
        try:
            q.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)


def _alive(q) -> bool:
    import psutil

    try:
        return q.is_running() and q.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- Sail --------------------------------------------------------------------------------------------------
@dataclass
class SailServer:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path

    def sessions(self) -> list[str]:
        """Spark sessions the server created so far (from its log: ``creating session <id>``)."""
        return re.findall(r"creating session ([0-9a-f-]+)", self.log.read_text(errors="replace"))


@pytest.fixture(scope="session")
def sail_server(tmp_path_factory) -> SailServer:
    """``sail spark server --ip 127.0.0.1 --port PORT`` in its own process; yields the ``sc://`` URL."""
    exe = BIN / "sail"
    if not exe.is_file():
        pytest.skip(f"Sail CLI not found at {exe} (pysail not installed)")
    work = tmp_path_factory.mktemp("sail")
    log = work / "sail.log"
    port = free_port()
    t0 = time.perf_counter()
    # The server's own idle-session timeout (Sail's default, 900 s, ends a step's session while Ray works);
    # RUST_LOG at info for the session manager only: the log then names every session a client opened.
    env = {"SAIL_SPARK__SESSION_TIMEOUT_SECS": "3600", "RUST_LOG": "warn,sail_session=info,sail_cli=info"}
    proc = start([str(exe), "spark", "server", "--ip", "127.0.0.1", "--port", str(port), "-C", str(work)],
                 log, env=env)
    if not wait_until(lambda: port_open(port), START_TIMEOUT_S, proc):
        stop([proc])
        pytest.skip(f"Sail Spark Connect server did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S:.0f}s "
                    f"(rc={proc.poll()}):\n{log_tail(log)}")
    TIMINGS["sail start"] = time.perf_counter() - t0
    yield SailServer(f"sc://127.0.0.1:{port}", port, proc, log)
    t0 = time.perf_counter()
    stop([proc])
    TIMINGS["sail stop"] = time.perf_counter() - t0


# -- Ray ---------------------------------------------------------------------------------------------------
# Detached actors that outlive the job that started them (0 CPU each): Ray Data's own (started by a job's first
# dataset, kept for the cluster's lifetime), and Ray Train's PlacementGroupCleaner. The cleaner watches its run's
# controller through the State API, which is served by the dashboard: this cluster has none (and this Ray is
# installed without the [default] extras the State API needs), so after a killed driver it never sees the
# controller die and stays. The placement group itself goes with the dead job.
RAY_DETACHED = {"ray::_StatsActor", "ray::_AutoscalingCoordinatorActor", "ray::ActorLocationTracker",
                "ray::PlacementGroupCleaner"}


@dataclass
class RayCluster:
    address: str
    temp_dir: Path
    head: subprocess.Popen
    worker: subprocess.Popen
    logs: dict[str, Path]
    env: dict[str, str] = field(default_factory=dict)  # what a client of this cluster needs in its environment
    seen: dict[str, set[str]] = field(default_factory=lambda: {"head": set(), "worker": set()})
    dashboard: str | None = None  # http://127.0.0.1:PORT of the head's dashboard (the Ray Jobs server), if any
    no_dashboard: str = ""  # why there is none
    extras: str = ""  # the folder holding the ray[default] extras ('' when this Python imports them)

    def status(self, timeout: float = 120) -> str:
        """``ray status --address`` (its output; a note if it did not answer within ``timeout`` seconds)."""
        try:
            r = subprocess.run([str(BIN / "ray"), "status", f"--address={self.address}"], capture_output=True,
                               text=True, timeout=timeout, env={**os.environ, **self.env})
        except subprocess.TimeoutExpired:
            return f"(ray status did not answer within {timeout:.0f}s)"
        return r.stdout + r.stderr

    def alive_nodes(self) -> int:
        """Active nodes in ``ray status`` (one ``1 node_<id>`` line each under Active:)."""
        text = self.status()
        active = text.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in text else ""
        return len(re.findall(r"^\s*1 node_[0-9a-f]+", active, re.M))

    def raylet(self, node: str):
        """The raylet process of ``node`` (head | worker): a child of that node's ``ray start --block``."""
        import psutil

        root = psutil.Process((self.head if node == "head" else self.worker).pid)
        for c in root.children():
            try:
                if Path(c.exe()).name == "raylet":
                    return c
            except psutil.Error:
                continue
        return None

    def ray_processes(self, node: str) -> set[str]:
        """Titles of the Ray worker processes (tasks, actors; ``ray::Name``) the node's raylet runs now."""
        import psutil

        r = self.raylet(node)
        if r is None:
            return set()
        names = set()
        for c in r.children():
            try:
                title = c.cmdline()[0] if c.cmdline() else ""
            except psutil.Error:
                continue
            if title.startswith("ray::") and title not in ("ray::IDLE", "ray::DashboardAgent",
                                                           "ray::RuntimeEnvAgent"):
                names.add(title.split()[0])
        return names

    def wait_idle(self, timeout: float) -> set[str]:
        """Wait (bounded) until both nodes run no Ray worker processes but the detached actors of RAY_DETACHED;
        returns what is left."""
        deadline = time.monotonic() + timeout
        while True:
            left = {t for t in self.ray_processes("head") | self.ray_processes("worker")
                    if t.split(".")[0] not in RAY_DETACHED}
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(1)

    def watch(self, every: float = 0.5):
        """A context manager that samples ``ray_processes`` of both nodes into ``seen`` while it is open."""
        cluster = self

        class _Watch:
            def __enter__(self):
                self.halt = threading.Event()
                self.thread = threading.Thread(target=self.run, daemon=True)
                self.thread.start()
                return cluster.seen

            def run(self):
                while not self.halt.wait(every):
                    for node in ("head", "worker"):
                        try:
                            cluster.seen[node] |= cluster.ray_processes(node)
                        except Exception:  # noqa: BLE001 - a process that ends while it is read
                            pass

            def __exit__(self, *exc):
                self.halt.set()
                self.thread.join(timeout=10)

        return _Watch()

    def own_stragglers(self) -> list:
        return processes_naming(self.temp_dir)


def processes_naming(tmp: Path) -> list:
    """Processes whose command line names ``tmp``, a cluster's unique temp dir (its gcs_server, raylets, agents,
    log monitors): what may outlive a node's ``ray start`` process. Scoped by that dir, never by name alone."""
    import psutil

    mine = []
    for q in psutil.process_iter(["cmdline"]):
        try:
            if any(str(tmp) in a for a in (q.info["cmdline"] or [])):
                mine.append(q)
        except psutil.Error:
            continue
    return mine


_TOKEN = secrets.token_hex(32)


def ray_env(client: bool = False) -> dict[str, str]:
    """The environment of this cluster's nodes (``client=False``) or of a process that joins it: token
    authentication (Ray's default for a new cluster) with a token of this session's own, in the environment, so
    nothing reads or writes the user's ~/.ray/auth_token; no usage stats; no inherited RAY_ADDRESS.

    A client also gets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: stock Ray rewrites a 127.0.0.1 address (``ray.init``,
    ``ray status``) to the machine's routable IP, where this loopback cluster does not listen; that switch is the
    one Ray reads to keep it (in a process that starts no node it changes nothing else)."""
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": _TOKEN, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": ""}
    if client:
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    else:  # a node stops its processes on SIGTERM at once: no drain (up to 30 s) for Serve proxies
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    return env


def _ray_node_args(ports: dict[str, int]) -> list[str]:
    """Every port a node binds, chosen free (the defaults collide with other local clusters: the dashboard
    agent's 52365, a worker range starting at 10002 that both nodes would hand out); workers on ports the OS
    assigns."""
    return [
        "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
        "--object-store-memory=300000000", "--disable-usage-stats",
        f"--node-manager-port={ports['node_manager']}", f"--object-manager-port={ports['object_manager']}",
        f"--dashboard-agent-listen-port={ports['agent_http']}", f"--dashboard-agent-grpc-port={ports['agent_grpc']}",
        f"--metrics-export-port={ports['metrics']}", f"--runtime-env-agent-port={ports['runtime_env']}",
        "--min-worker-port=0", "--max-worker-port=0",
    ]


RAY_DEFAULT_ENV = "STRATA_RAY_DEFAULT_PATH"


def ray_default_extras() -> tuple[str | None, str]:
    """Where the ``ray[default]`` extras (the dashboard's and Jobs server's dependencies) are: ``''`` when this
    Python imports them, the folder STRATA_RAY_DEFAULT_PATH names when they import from it, else None; and why
    not. Checked as Ray itself decides (``import ray.dashboard.optional_deps``), in a child process, so this
    session's own imports stay as they are."""
    def imports(env: dict[str, str]) -> str:  # '' or the error
        check = [sys.executable, "-c", "import ray.dashboard.optional_deps, ray.dashboard.modules.job.sdk"]
        try:
            r = subprocess.run(check, capture_output=True, text=True, timeout=START_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            return f"the import check took over {START_TIMEOUT_S:.0f}s"
        return "" if r.returncode == 0 else (r.stderr.strip().splitlines() or ["?"])[-1]

    if not imports(dict(os.environ)):
        return "", ""
    folder = os.environ.get(RAY_DEFAULT_ENV, "")
    if not folder:
        return None, (f"the ray[default] extras are not importable and {RAY_DEFAULT_ENV} is unset (`make "
                      "test-cluster` installs them into .venv/ray-default and sets it)")
    err = imports(with_pythonpath(dict(os.environ), folder))
    if err:
        return None, f"{RAY_DEFAULT_ENV}={folder}: the ray[default] extras do not import from it ({err})"
    return folder, ""


def with_pythonpath(env: dict[str, str], folder: str) -> dict[str, str]:
    """``env`` with ``folder`` first on PYTHONPATH (unchanged for '')."""
    if not folder:
        return env
    rest = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (folder, rest) if p)}


def _drop(tmp: Path) -> None:
    if not KEEP:
        shutil.rmtree(tmp, ignore_errors=True)


def _ports(*names: str) -> dict[str, int]:
    out: dict[str, int] = {}
    while len(out) < len(names):
        p = free_port()
        if p not in out.values():
            out[names[len(out)]] = p
    return out


class _NoCluster(Exception):
    """A component of the cluster did not start: the tests that need it are skipped with this reason."""


NODE_ATTEMPTS = 2  # a node whose start fails (Ray's own start-up deadlines on a busy machine) is started again


def _start_node(node: list[str], args: list[str], log: Path, env: dict[str, str],
                dashboard: bool = False) -> tuple[subprocess.Popen | None, str, dict[str, int]]:
    """Start one node (``ray_node.py start ... --block``) and wait, bounded, for "Ray runtime started"; up to
    NODE_ATTEMPTS tries with fresh ports. ``dashboard``: the head's dashboard (and Jobs server) on a free
    loopback port, its metrics server on another. Returns the process (None if every try failed), the log's
    tail and the ports of the last try."""
    tail, ports = "", {}
    for _ in range(NODE_ATTEMPTS):
        names = ["node_manager", "object_manager", "agent_http", "agent_grpc", "metrics", "runtime_env"]
        ports = _ports(*names, *(["dashboard", "dashboard_metrics"] if dashboard else []))
        extra, node_env = [], env
        if dashboard:
            extra = ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={ports['dashboard']}"]
            node_env = {**env, "DASHBOARD_METRIC_PORT": str(ports["dashboard_metrics"])}  # Ray's default: 44227
        mark = log.stat().st_size if log.exists() else 0
        proc = start([*node, "start", *args, *_ray_node_args(ports), *extra], log, env=node_env)

        def started() -> bool:
            with open(log, "rb") as f:
                f.seek(mark)
                return b"Ray runtime started" in f.read()

        if wait_until(started, START_TIMEOUT_S, proc):
            return proc, "", ports
        tail = log_tail(log)
        stop([proc])
    return None, tail, ports


@pytest.fixture(scope="session")
def ray_cluster() -> RayCluster:
    """Two Ray nodes on this machine (1 CPU each): ``ray start --head --block`` and ``ray start --address
    --block`` (through ``ray_node.py``), each in a session of its own; yields once ``ray status`` shows both
    alive. The head runs the dashboard (the Ray Jobs server) when the ray[default] extras are at hand; if it
    does not start with it, it is started without (``no_dashboard`` says why) and only ``ray_job_server``'s
    tests skip."""
    # A short temp dir: Ray's unix sockets live under it (108-byte path limit). It also scopes the cluster's
    # ray_current_cluster file, so a bare ray.init() elsewhere on the machine does not join this cluster.
    tmp = Path(tempfile.mkdtemp(prefix="sr", dir="/tmp"))
    logs = {"head": tmp / "head.log", "worker": tmp / "worker.log"}
    env = ray_env()
    # The head's own environment, which what it starts inherits (a Ray job's driver runs on the head): the
    # venv's python first on PATH (a job's entrypoint is `python ...`), and 127.0.0.1 kept as it is
    # (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, as for a client: on a head node it changes nothing else).
    head_env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    extras, no_dashboard = ray_default_extras()
    node = [sys.executable, str(Path(__file__).with_name("ray_node.py"))]
    gcs = free_port()
    address = f"127.0.0.1:{gcs}"
    t0 = time.perf_counter()
    head = worker = None
    head_args = ["--head", f"--port={gcs}", f"--temp-dir={tmp}"]
    try:
        dashboard = None
        if extras is not None:
            head, tail, ports = _start_node(node, head_args, logs["head"], with_pythonpath(head_env, extras),
                                            dashboard=True)
            if head is not None:
                dashboard = f"http://127.0.0.1:{ports['dashboard']}"
            else:
                no_dashboard = (f"the Ray head node did not start with its dashboard in {NODE_ATTEMPTS} tries of "
                                f"{START_TIMEOUT_S:.0f}s:\n{tail}")
        if head is None:
            head, tail, _ = _start_node(node, [*head_args, "--include-dashboard=false"], logs["head"], head_env)
        if head is None:
            raise _NoCluster(f"Ray head node (GCS on {address}) did not start in {NODE_ATTEMPTS} tries of "
                             f"{START_TIMEOUT_S:.0f}s:\n{tail}")
        worker, tail, _ = _start_node(node, [f"--address={address}", f"--temp-dir={tmp}"], logs["worker"], env)
        if worker is None:
            raise _NoCluster(f"Ray worker node did not join {address} in {NODE_ATTEMPTS} tries of "
                             f"{START_TIMEOUT_S:.0f}s:\n{tail}")
        cluster = RayCluster(address, tmp, head, worker, logs, ray_env(client=True), dashboard=dashboard,
                             no_dashboard=no_dashboard, extras=extras or "")
        if not wait_until(lambda: cluster.alive_nodes() >= 2, START_TIMEOUT_S, worker, every=2):
            raise _NoCluster(f"`ray status --address={address}` did not show 2 alive nodes in "
                             f"{START_TIMEOUT_S:.0f}s:\n{cluster.status()[-2000:]}")
    except BaseException as e:  # noqa: BLE001 - whatever stopped the start, stop what was started
        started = [p for p in (worker, head) if p is not None]
        stop(started, extra=lambda: processes_naming(tmp))
        _drop(tmp)
        if isinstance(e, _NoCluster):
            pytest.skip(str(e))
        raise
    TIMINGS["ray start (2 nodes)"] = time.perf_counter() - t0
    yield cluster
    t0 = time.perf_counter()
    stop([worker, head], extra=cluster.own_stragglers)
    _drop(tmp)
    TIMINGS["ray stop"] = time.perf_counter() - t0


# -- the Ray Jobs server ---------------------------------------------------------------------------------
@dataclass
class RayJobServer:
    address: str  # http://127.0.0.1:PORT: what `strata submit --target` takes
    cluster: RayCluster
    env: dict[str, str]  # what a client (`strata submit`) needs in its environment: the token, the extras

    def get(self, path: str, timeout: float = 10, method: str = "GET") -> tuple[int, str]:
        """``GET address+path`` with the cluster's token; (HTTP status, body), (0, error) when unreachable."""
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.address + path, method=method,
                                     headers={"Authorization": f"Bearer {self.cluster.env['RAY_AUTH_TOKEN']}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        try:
            with opener.open(req, timeout=timeout) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except OSError as e:
            return 0, str(e)

    def post(self, path: str, timeout: float = 10) -> tuple[int, str]:
        return self.get(path, timeout, method="POST")

    def job(self, job_id: str) -> dict:
        """The server's record of a job (``GET /api/jobs/ID``: status, entrypoint, runtime_env, ...)."""
        import json

        status, body = self.get(f"/api/jobs/{job_id}")
        assert status == 200, (status, body[-2000:])
        return json.loads(body)


@pytest.fixture(scope="session")
def ray_job_server(ray_cluster) -> RayJobServer:
    """The Ray Jobs server of ``ray_cluster``'s head (its dashboard, on a free loopback port, token auth as
    the cluster), once it lists jobs. Skips with the reason when the head runs no dashboard (no
    ray[default] extras, or it did not start with one) or it does not answer within the start timeout. Stopped
    with the head node."""
    if ray_cluster.dashboard is None:
        pytest.skip(f"no Ray Jobs server: {ray_cluster.no_dashboard}")
    server = RayJobServer(ray_cluster.dashboard, ray_cluster,
                          with_pythonpath(dict(ray_cluster.env), ray_cluster.extras))
    t0 = time.perf_counter()
    seen: list[tuple[int, str]] = []
    if not wait_until(lambda: seen.append(server.get("/api/jobs/")) or seen[-1][0] == 200, START_TIMEOUT_S,
                      ray_cluster.head, every=1):
        last = seen[-1] if seen else None
        pytest.skip(f"the Ray Jobs server at {server.address} did not answer GET /api/jobs/ within "
                    f"{START_TIMEOUT_S:.0f}s (last: {last}):\n{log_tail(ray_cluster.logs['head'])}")
    TIMINGS["ray jobs server ready"] = time.perf_counter() - t0
    return server


def pytest_terminal_summary(terminalreporter):  # noqa: ANN001
    if TIMINGS:
        terminalreporter.write_sep("-", "cluster fixtures")
        for k, v in TIMINGS.items():
            terminalreporter.write_line(f"{k}: {v:.1f}s")
