"""``strata refresh``: the nightly run of the stage graph, incremental and safe to kill.

The same steps as ``strata run`` (``strata.pipeline.graph``), started from the champion instead of the
off-the-shelf model (mining its neighbours, training from it, evaluating it beside the candidate), then the
tail: gate -> promote (MLflow registry alias ``champion``) -> index (the product index, rebuilt with the
champion).

Each step has an input fingerprint (content hashes of the tables it reads, its config sections, the outputs of
the steps it uses, the champion version where it starts from the champion); a step whose fingerprint equals
its last completed one is skipped. State lives in ``STATE_DIR/state.json``, written atomically after each
completed step, so a killed refresh redoes only the step it was in. A file lock (``flock``, released by the OS
when the process dies) keeps two refreshes apart.

``STATE_DIR`` may be an object-store URI: the refresh then works in a local copy pushed back after every step
(``strata.mirror``), registers models by their URI in the bucket, and keeps the lakehouse (default
``STATE_DIR/lakehouse``) and Ray Train's storage (default ``STATE_DIR/_train``) in the bucket directly. The
lock then guards only this machine: on an object store the scheduler keeps one refresh at a time (Airflow
``max_active_runs=1``, a Databricks job's ``max_concurrent_runs: 1``, a CronJob's ``concurrencyPolicy: Forbid``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from strata.config import StrataConfig
from strata.pipeline.execute import Context, State, execute, select
from strata.pipeline.manifest import Manifest
from strata.pipeline.registry import Registry
from strata.pipeline.run import remote_defaults
from strata.storage import is_remote, location
from strata.tables import Lakehouse

log = logging.getLogger(__name__)


class RefreshLocked(RuntimeError):
    """Another refresh holds the lock on this state dir."""


@contextlib.contextmanager
def refresh_lock(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    fh = open(state_dir / "refresh.lock", "w")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefreshLocked(f"another strata refresh is running on {state_dir}") from None
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


@dataclass
class RefreshResult:
    run_id: str
    steps: dict[str, dict] = field(default_factory=dict)
    champion_before: str | None = None
    champion_after: str | None = None
    promoted: bool = False
    candidate_version: str | None = None


def refresh(config: StrataConfig, state_dir: str | Path, engines: Any = None) -> RefreshResult:
    """Run the nightly refresh once (see module docstring); returns what ran, what was skipped, the gate."""
    from strata.engines import Engines

    mirror = None
    if is_remote(str(state_dir)):
        from strata.mirror import Mirror

        uri = str(location(str(state_dir)))
        config, own_dirs = remote_defaults(config, uri)
        mirror = Mirror(uri, exclude=own_dirs)
        state_dir = mirror.pull()
    state_dir = Path(state_dir).expanduser().resolve()
    try:
        with refresh_lock(state_dir):
            own = engines is None
            eng = engines or Engines(config.engine)
            try:
                return _refresh(config, state_dir, eng, mirror)
            finally:
                if own:
                    eng.close()
    finally:
        if mirror is not None:
            mirror.push()
            mirror.close()


def _champion(cfg: StrataConfig, registry: Registry, state_dir: Path, run_id: str) -> Any:
    """The registry's champion; the first refresh registers the off-the-shelf model as the bootstrap."""
    from strata.embed.encoder import resolve_model

    champ = registry.champion()
    if champ is None:
        champ = registry.register(resolve_model(cfg.train.base_model), state_dir / "models",
                                  {"origin": "bootstrap", "run_id": run_id})
        registry.promote(champ.version)
        log.info("refresh: no champion yet; registered %s as version %s (bootstrap)", cfg.train.base_model,
                 champ.version)
    return champ


def _refresh(cfg: StrataConfig, state_dir: Path, eng: Any, mirror: Any = None) -> RefreshResult:
    run_id = time.strftime("refresh-%Y%m%d-%H%M%S")
    run_dir = state_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(cfg.refresh.registry_uri or (state_dir / "mlruns").as_uri(), cfg.refresh.model_name,
                        publish=mirror.uri_for if mirror is not None else None)
    champ = _champion(cfg, registry, state_dir, run_id)
    res = RefreshResult(run_id, champion_before=champ.version)
    ctx = Context(cfg, eng, Lakehouse(cfg.lakehouse.root, cfg.lakehouse.format), run_dir,
                  Manifest(run_id=run_id, config=cfg), State(state_dir / "state.json"), mode="refresh",
                  start_model=champ.source, start_version=champ.version,
                  services={"registry": registry, "state_dir": state_dir, "models_dir": state_dir / "models"})

    def record(step: Any, info: dict) -> None:
        res.steps[step.name] = info
        (run_dir / "manifest.json").write_text(json.dumps(res.__dict__, indent=2, default=str))
        log.info("refresh %s: %s", step.name, "ran" if info["ran"] else "skipped (inputs unchanged)")
        if mirror is not None:
            mirror.push()

    execute(ctx, select(cfg, "refresh", None), skip_unchanged=True, on_step=record)
    gate = res.steps.get("gate", {})
    res.promoted = bool(gate.get("ran") and gate.get("promote"))
    res.candidate_version = gate.get("version") if gate.get("ran") else None
    champ_now = registry.champion()
    res.champion_after = champ_now.version if champ_now else None
    (run_dir / "manifest.json").write_text(json.dumps(res.__dict__, indent=2, default=str))
    return res
