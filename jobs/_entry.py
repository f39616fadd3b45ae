"""Shared shim: a job file is `strata <command> [<subcommand>]` with the job's argv, so spark-submit,
`ray job submit` and Databricks python tasks run exactly what the CLI runs.

``run("run")`` is ``strata run ARGV...``; ``run("refresh")`` is ``strata refresh ARGV...``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path


def _private_working_dir(root: Path) -> Path:
    """Under Ray Jobs the job starts in Ray's unpacked copy of its working_dir (``.../working_dir_files/
    _ray_pkg_*``), and Ray's runtime-env agent may delete and unpack that copy again while the job runs (it
    unpacks with overwrite when it sets up workers of the job, e.g. Ray Train's): the driver would be left in a
    deleted folder, where ``os.getcwd()`` and any later import from its ``lib/`` fail. The driver therefore runs
    from a private copy of that folder (removed at exit); relative paths in argv resolve as before."""
    cwd = Path.cwd()
    if "working_dir_files" not in cwd.parts or root != cwd:
        return root
    copy = Path(tempfile.mkdtemp(prefix="strata-job-")) / cwd.name
    shutil.copytree(cwd, copy, symlinks=True)
    os.chdir(copy)
    atexit.register(shutil.rmtree, copy.parent, True)
    return copy


def run(command: str, *subcommands: str) -> None:
    root = _private_working_dir(Path(__file__).resolve().parents[1])
    lib = root / "lib"
    if lib.is_dir() and str(lib) not in sys.path:  # a plain checkout on a cluster node, not installed
        sys.path.insert(0, str(lib))
    from strata.cli import main

    sys.argv = ["strata", command, *subcommands, *sys.argv[1:]]
    main()
