"""Shared shim: a job file is `strata <command> [<subcommand>]` with the job's argv, so spark-submit,
`ray job submit` and Databricks python tasks run exactly what the CLI runs.

``run("run")`` is ``strata run ARGV...``; ``run("refresh")`` is ``strata refresh ARGV...``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def run(command: str, *subcommands: str) -> None:
    lib = Path(__file__).resolve().parents[1] / "lib"
    if lib.is_dir() and str(lib) not in sys.path:  # a plain checkout on a cluster node, not installed
        sys.path.insert(0, str(lib))
    from strata.cli import main

    sys.argv = ["strata", command, *subcommands, *sys.argv[1:]]
    main()
