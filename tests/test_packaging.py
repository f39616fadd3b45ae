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


# Databricks Runtime -> the Python it ships (release notes of each LTS). The bundle names one of these.
RUNTIME_PYTHON = {"15.4": "3.11", "16.4": "3.12", "17.3": "3.12"}


def test_the_wheel_installs_on_the_databricks_runtime_it_names():
    """The runtime ships its own Python and Spark: the wheel must admit that Python and bring no Spark (a second
    pyspark would shadow the runtime's); Spark is the [spark] extra, which `make setup` and the images install."""
    import yaml
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads(PYPROJECT.read_text())["project"]
    base, extras = _names(project["dependencies"]), project["optional-dependencies"]
    assert not base & {"pyspark", "pysail", "databricks-connect"}, base
    assert {"pyspark", "pysail"} <= _names(extras["spark"])
    bundle = yaml.safe_load((PYPROJECT.parent / "infra" / "databricks" / "databricks.yml").read_text())
    for var in ("spark_version", "gpu_spark_version"):
        runtime = bundle["variables"][var]["default"]
        python = RUNTIME_PYTHON[".".join(runtime.split(".")[:2])]
        assert f"{python}.0" in SpecifierSet(project["requires-python"]), (runtime, python)
    makefile = (PYPROJECT.parent / "Makefile").read_text()
    assert '.[dev,cpu,spark]' in makefile  # the local venv still gets Spark
