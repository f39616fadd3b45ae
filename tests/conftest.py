"""Shared fixtures. Also contains the delta-rs teardown abort (see pytest_unconfigure)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from strata.ingest.config import default_data_root  # noqa: E402

_EXIT = {"status": 0}


@pytest.fixture
def forbid_whole_reads(monkeypatch):
    """``arm(*tables)``: ``Lakehouse.read_arrow`` (a whole-table read) raises for those tables, and every batch
    ``Lakehouse.scan_batches`` streams (also through ``scan_frame`` and the ``strata.embed.scan`` alias) is
    recorded as (table, columns, rows) in the list ``arm`` returns: proof a stage streams what it needs instead
    of materialising a table."""
    from strata.tables import Lakehouse

    real_read, real_scan = Lakehouse.read_arrow, Lakehouse.scan_batches
    seen: list[tuple[str, list[str], int]] = []

    def arm(*names: str) -> list[tuple[str, list[str], int]]:
        def read_arrow(self, name, columns=None):
            if name in names:
                raise AssertionError(f"whole-table read of {name!r}")
            return real_read(self, name, columns)

        def spy(lakehouse, name, columns=None, filter=None, **kw):
            for b in real_scan(lakehouse, name, columns, filter=filter, **kw):
                seen.append((name, list(b.schema.names), b.num_rows))
                yield b

        monkeypatch.setattr(Lakehouse, "read_arrow", read_arrow)
        monkeypatch.setattr(Lakehouse, "scan_batches", spy)
        return seen

    return arm


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real public data (../shared/data or $STRATA_DATA); tests that need it skip when absent."""
    root = Path(os.environ.get("STRATA_DATA") or default_data_root())
    if not (root / "README.md").is_file():
        pytest.skip(f"real data not found at {root} (set STRATA_DATA or place ../shared/data)")
    return root


@pytest.fixture(scope="session")
def engines():
    """One embedded Sail server (and, when asked, one local Ray) for the whole session."""
    from strata.engines import EngineConfig
    from strata.engines import Engines

    eng = Engines(EngineConfig(ray_num_cpus=2))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def spark(engines):
    return engines.spark


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001
    _EXIT["status"] = int(exitstatus)


def pytest_unconfigure(config):  # noqa: ANN001
    """deltalake (delta-rs) can abort in interpreter teardown after a MERGE (rc 134) although every test
    has finished and reported. Leave with pytest's own status once its output is flushed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT["status"])


@pytest.fixture
def products_lakehouse():
    """A factory: ``n`` products in several files under ``root`` (Delta: appends of 25; parquet: row groups of
    10), a quarter of them in catalog ``other``, the rest in ``shop``; returns the Lakehouse."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from strata.tables import Lakehouse, spec

    def make(root, n: int, fmt: str = "delta") -> Lakehouse:
        rows = [dict(product_id=f"p{(i * 7919) % n:04d}", source="shop" if i % 4 else "other",
                     title=f"title {i}", description="d" * (i % 5) or None, brand=None, category_id=None,
                     attributes=[]) for i in range(n)]
        table = pa.Table.from_pylist(rows, schema=spec("products").schema)
        if fmt == "delta":
            for s in range(0, n, 25):  # several files, as appends leave them
                write_deltalake(str(root / "products"), table.slice(s, 25), mode="append")
        else:
            import pyarrow.parquet as pq

            (root / "products").mkdir(parents=True)
            pq.write_table(table, str(root / "products" / "part-0.parquet"), row_group_size=10)
        return Lakehouse(root, fmt)

    return make


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The S3-compatible test server's address and credentials are in the environment from the start of the session
# (the server itself starts when a test asks for ``s3_server``): every engine a test starts, local Ray's worker
# processes included, then reads them as a cluster node reads its own. Tests never reach a real S3.
_S3_ENDPOINT = f"http://127.0.0.1:{_free_port()}"
os.environ.update({"AWS_ENDPOINT_URL": _S3_ENDPOINT, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "strata-test",
                   "AWS_SECRET_ACCESS_KEY": "strata-test", "AWS_REGION": "us-east-1"})
for _k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(_k, None)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (moto's server mode, a process of its own on the loopback port the session's
    ``AWS_ENDPOINT_URL`` names): yields ``bucket(name) -> "s3://name"``, which creates a bucket. Stopped at the
    end of the session (that process only, by its process group)."""
    import signal
    import subprocess
    import time
    import urllib.request

    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.skip("moto[server] not installed: the S3-compatible test server cannot start (make setup)")
    port = int(_S3_ENDPOINT.rsplit(":", 1)[1])
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{_S3_ENDPOINT}/moto-api/", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"moto server did not start within 60 s: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.3)

    def bucket(name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=_S3_ENDPOINT).create_bucket(Bucket=name)
        return f"s3://{name}"

    bucket.endpoint = _S3_ENDPOINT
    try:
        yield bucket
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
