"""Install what the ``ray-jobs`` extra of pyproject.toml (``ray[default]``: the dashboard and Ray Jobs server's
dependencies) adds over this venv into a folder of its own, for the cluster tests' Ray Jobs server
(``make test-cluster`` runs it):

    .venv/bin/python tests/tools/ensure_ray_default.py .venv/ray-default

The venv's site-packages stay as they are: with the extras installed there, every ``ray.init()`` of the main
suite starts its dashboard agent in full mode (measured on 2 cores: ~1 s and ~1 CPU-second more per init, a
little more CPU while idle, the same processes). Only packages the venv lacks are installed (``pip install
--no-deps --target``, exact versions from pip's own resolution against the venv), never a second copy of ray,
numpy or anything else the venv has: if the resolution wants to upgrade or downgrade an installed package, this
stops with an error instead. A process that needs the extras puts the folder on PYTHONPATH (tests/cluster:
STRATA_RAY_DEFAULT_PATH). Exit 0 with the folder ready (its REQUIREMENTS.txt written last), or 1 and the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXTRA = "ray-jobs"
CHECK = "import ray.dashboard.optional_deps, ray.dashboard.modules.job.sdk"  # what Ray itself imports to decide


def requirements() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"].get("optional-dependencies", {})
    if EXTRA not in extras:
        sys.exit(f"ensure_ray_default: no [{EXTRA}] extra in pyproject.toml")
    return list(extras[EXTRA])


def missing(reqs: list[str]) -> list[str]:
    """``name==version`` of what pip would install into this venv for ``reqs``; an error if that would change a
    package the venv already has."""
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", *reqs],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"ensure_ray_default: pip could not resolve {reqs}:\n{r.stderr[-3000:]}")
    report = json.loads(r.stdout)
    out, clash = [], []
    for item in report.get("install", []):
        name, ver = item["metadata"]["name"], item["metadata"]["version"]
        try:
            have = version(name)
        except PackageNotFoundError:
            out.append(f"{name}=={ver}")
            continue
        clash.append(f"{name} {have} -> {ver}")
    if clash:
        sys.exit("ensure_ray_default: the extras would change packages this venv has (a second copy on PYTHONPATH "
                 f"would shadow them): {', '.join(clash)}")
    return sorted(out, key=str.lower)


def importable(folder: Path) -> str:
    """'' when Ray's own dashboard check imports with ``folder`` on PYTHONPATH, else the error."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)}
    r = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True)
    return "" if r.returncode == 0 else (r.stderr.strip().splitlines() or ["?"])[-1]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.exit(__doc__)
    folder = Path(argv[0]).resolve()
    reqs = requirements()
    pkgs = missing(reqs)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if pkgs:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                            "--target", str(tmp), *pkgs], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            sys.exit(f"ensure_ray_default: pip install --target failed:\n{r.stderr[-3000:]}")
    err = importable(tmp)
    if err:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"ensure_ray_default: installed {pkgs}, but Ray's dashboard check still fails: {err}")
    (tmp / "REQUIREMENTS.txt").write_text("\n".join([f"# {EXTRA}: {' '.join(reqs)}", *pkgs]) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    print(f"{folder}: {len(pkgs)} packages ({', '.join(pkgs) or 'none: the venv has them all'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
