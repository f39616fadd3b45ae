"""The FAISS build is an extra: the CPU and GPU wheels both provide `faiss`, so no install may pull both."""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _names(reqs: list[str]) -> set[str]:
    import re

    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in reqs}


def test_faiss_builds_never_meet():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    base, extras = _names(project["dependencies"]), project["optional-dependencies"]
    assert not {n for n in base if n.startswith("faiss")}, "a FAISS build in the base dependencies"
    assert "faiss-cpu" in _names(extras["cpu"]) and "faiss-gpu-cu12" in _names(extras["gpu"])
    for name, reqs in extras.items():
        builds = {n for n in _names(reqs) if n.startswith("faiss")}
        assert len(builds) <= 1, (name, builds)
