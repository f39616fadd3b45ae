"""``strata run``: the stage graph's main steps for a profile, into one run directory.

Every step shares one set of engines; ``only`` runs just those steps (a scheduler's task), reading what
earlier steps wrote from ``RUN_DIR/state.json``. A failed run still leaves a manifest saying so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.config import StrataConfig
from strata.engines import Engines
from strata.pipeline.execute import Context, State, execute, select
from strata.pipeline.manifest import Manifest
from strata.tables import Lakehouse

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    evaluation: dict[str, Any]
    manifest_path: Path
    report_path: Path | None
    steps: dict[str, dict]


def lakehouse_for(config: StrataConfig, run_dir: Path) -> Lakehouse:
    return Lakehouse(config.lakehouse.root or run_dir / "lakehouse", config.lakehouse.format)


def run_pipeline(config: StrataConfig, run_dir: str | Path, engines: Engines | None = None,
                 only: list[str] | None = None) -> RunResult:
    """Run the graph's active steps (or ``only`` those) into ``run_dir``; returns where things were written."""
    steps = select(config, "run", only)  # an unknown or switched-off step fails before anything is written
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(run_id=run_dir.name, config=config)
    state = State(run_dir / "state.json")
    own_engines = engines is None
    eng = engines or Engines(config.engine)
    ctx = Context(config, eng, lakehouse_for(config, run_dir), run_dir, manifest, state)
    name = "manifest.json" if not only else f"manifest-{'-'.join(only)}.json"
    status = "failed"
    try:
        done = execute(ctx, steps)
        status = "succeeded"
    finally:
        if own_engines:
            eng.close()
        manifest_path = manifest.write(run_dir / name, status=status)
    metrics = run_dir / "metrics.json"
    evaluation = json.loads(metrics.read_text()) if metrics.is_file() else {}
    report = state.outputs("report").get("report")
    return RunResult(run_dir, evaluation, manifest_path, Path(report) if report else None, done)
