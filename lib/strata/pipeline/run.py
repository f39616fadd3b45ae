"""``strata run``: the stage graph's main steps for a profile, into one run directory.

Every step shares one set of engines; ``only`` runs just those steps (a scheduler's task), reading what
earlier steps wrote from ``RUN_DIR/state.json``. A failed run still leaves a manifest saying so.

``RUN_DIR`` may be an object-store URI (``s3://bucket/runs/nightly``): the steps then work in a local copy of it
that is pushed back after every step (``strata.mirror``); the lakehouse (default ``RUN_DIR/lakehouse``) and
Ray Train's storage (default ``RUN_DIR/_train``) are then read and written in the bucket directly.
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
from strata.storage import StoragePath, is_remote, location
from strata.tables import Lakehouse

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: StoragePath
    evaluation: dict[str, Any]
    manifest_path: StoragePath
    report_path: StoragePath | None
    steps: dict[str, dict]


def lakehouse_for(config: StrataConfig, run_dir: Path) -> Lakehouse:
    return Lakehouse(config.lakehouse.root or run_dir / "lakehouse", config.lakehouse.format)


def run_pipeline(config: StrataConfig, run_dir: str | Path, engines: Engines | None = None,
                 only: list[str] | None = None) -> RunResult:
    """Run the graph's active steps (or ``only`` those) into ``run_dir``; returns where things were written."""
    steps = select(config, "run", only)  # an unknown or switched-off step fails before anything is written
    if is_remote(str(run_dir)):
        return _run_remote(config, str(location(str(run_dir))), engines, only, steps)
    run_dir = Path(run_dir).resolve()
    return _run(config, run_dir, run_dir.name, engines, only, steps)


def remote_defaults(config: StrataConfig, uri: str) -> tuple[StrataConfig, tuple[str, ...]]:
    """For a folder at ``uri``: the lakehouse and Ray Train's storage in the bucket beside the run's files
    (unless configured), and the subfolders a mirror of ``uri`` must leave alone."""
    lake = config.lakehouse.root or f"{uri}/lakehouse"
    storage = config.train.storage or f"{uri}/_train"
    config = config.model_copy(update={
        "lakehouse": config.lakehouse.model_copy(update={"root": str(lake)}),
        "train": config.train.model_copy(update={"storage": storage})})
    own = tuple(str(x)[len(uri) + 1:] for x in (lake, storage) if str(x).startswith(uri + "/"))
    return config, own


def _run_remote(config: StrataConfig, uri: str, engines: Engines | None, only: list[str] | None,
                steps: list) -> RunResult:
    from strata.mirror import Mirror

    config, own = remote_defaults(config, uri)
    mirror = Mirror(uri, exclude=own)
    local = mirror.pull()
    try:
        res = _run(config, local, location(uri).name, engines, only, steps, on_step=lambda *_: mirror.push())
    finally:
        mirror.push()  # the manifest, also of a failed run
        mirror.close()
    return RunResult(location(uri), res.evaluation, location(mirror.uri_for(res.manifest_path)),
                     location(mirror.uri_for(res.report_path)) if res.report_path else None, res.steps)


def _run(config: StrataConfig, run_dir: Path, run_id: str, engines: Engines | None, only: list[str] | None,
         steps: list, on_step: Any = None) -> RunResult:
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(run_id=run_id, config=config)
    state = State(run_dir / "state.json")
    own_engines = engines is None
    eng = engines or Engines(config.engine)
    ctx = Context(config, eng, lakehouse_for(config, run_dir), run_dir, manifest, state)
    name = "manifest.json" if not only else f"manifest-{'-'.join(only)}.json"
    status = "failed"
    try:
        done = execute(ctx, steps, on_step=on_step)
        status = "succeeded"
    finally:
        if own_engines:
            eng.close()
        manifest_path = manifest.write(run_dir / name, status=status)
    metrics = run_dir / "metrics.json"
    evaluation = json.loads(metrics.read_text()) if metrics.is_file() else {}
    report = state.outputs("report").get("report")
    return RunResult(run_dir, evaluation, manifest_path, Path(report) if report else None, done)
