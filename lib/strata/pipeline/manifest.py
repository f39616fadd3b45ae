"""What a run read, ran and produced: enough to reproduce it and to audit where a number came from.

A manifest records the resolved config (which holds no secrets: ``strata.config`` refuses key-like fields and
URLs with credentials), never environment variables. As a last guard everything written goes through
``secret_policy.redact``, which blanks any value under a key-like name or a URL with credentials.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from strata.config import StrataConfig
from strata.secret_policy import redact

_PACKAGES = (
    "strata-retrieval", "pyspark", "pysail", "deltalake", "ray", "torch", "transformers",
    "sentence-transformers", "faiss-cpu", "ranx", "bm25s",
)


def git_commit(repo: Path | None = None) -> dict[str, Any]:
    """HEAD commit and whether the tree had uncommitted changes (None outside a checkout)."""
    cwd = str(repo or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        return {"commit": sha, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@dataclass
class Manifest:
    run_id: str
    config: StrataConfig
    started_at: float = field(default_factory=time.time)
    timings: dict[str, float] = field(default_factory=dict)
    table_versions: dict[str, dict[str, int | None]] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; the timing is recorded even when the stage fails."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 3)

    def to_dict(self, status: str = "succeeded") -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": status,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "git": git_commit(),
            "config": self.config.model_dump(mode="json"),
            "table_versions": self.table_versions,
            "models": self.models,
            "timings_seconds": self.timings,
            "outputs": self.outputs,
            "host": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "machine": platform.machine(),
                "cpus": _cpu_count(),
            },
            "packages": package_versions(),
            **self.extra,
        }

    def write(self, path: Path, status: str = "succeeded") -> Path:
        path.write_text(json.dumps(redact(self.to_dict(status)), indent=2, sort_keys=False, default=str) + "\n")
        return path


def _cpu_count() -> int | None:
    import os

    return os.cpu_count()
