"""Executes the stage graph: one loop for ``strata run``, ``strata run --only STEP`` (a cluster task) and
``strata refresh``.

Each completed step's outputs and input fingerprint go into ``state.json`` (written atomically), so a step run
in another process (a scheduler's task, a resumed refresh) finds what earlier steps produced. With
``skip_unchanged`` (the refresh) a step whose fingerprint equals its last completed one is skipped and keeps
its outputs: the fingerprint is the content hash of the tables it reads (but does not write), its config
sections, the outputs of the steps it uses and, for a step that starts from it, the start model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

from strata.config import StrataConfig
from strata.engines import Engines
from strata.pipeline.graph import STEPS, GraphError, Step, active, step
from strata.pipeline.manifest import Manifest
from strata.tables import Lakehouse

log = logging.getLogger(__name__)

DIE_AFTER_ENV = "STRATA_REFRESH_DIE_AT"  # fault injection for the crash tests: die once this step's work is done


ROOT = "${root}"  # how state.json names its own folder, so the folder can move (a mirror's local copy, a new node)


def _swap(obj: Any, old: str, new: str) -> Any:
    """``obj`` with every string path at or under ``old`` rewritten under ``new``."""
    if isinstance(obj, str):
        return new + obj[len(old):] if obj == old or obj.startswith(old + "/") else obj
    if isinstance(obj, dict):
        return {k: _swap(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_swap(v, old, new) for v in obj]
    return obj


class State:
    """Per-step outputs and input fingerprints, persisted in one JSON file. Paths under ``root`` (the file's
    folder unless given) are stored relative to it (``${root}/...``), so the folder works wherever it is
    copied; ``outputs`` gives them back absolute."""

    def __init__(self, path: Path, root: Path | None = None):
        self.path = path
        self.root = str(Path(root or path.parent).resolve())
        self.data: dict = json.loads(path.read_text()) if path.is_file() else {"steps": {}}

    def done(self, name: str, fp: str) -> bool:
        return self.data["steps"].get(name, {}).get("inputs") == fp

    def stored(self, name: str) -> dict:
        """A step's outputs as stored (folder-relative): what fingerprints compare."""
        return self.data["steps"].get(name, {}).get("outputs", {})

    def outputs(self, name: str) -> dict:
        return _swap(self.stored(name), ROOT, self.root)

    def has(self, name: str) -> bool:
        return name in self.data["steps"]

    def complete(self, name: str, fp: str, outputs: dict) -> None:
        outputs = _swap(json.loads(json.dumps(outputs, default=str)), self.root, ROOT)
        self.data["steps"][name] = {"inputs": fp, "outputs": outputs, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)


@dataclass
class Context:
    """What a step function receives. Steps read their own config sections from ``config``, earlier steps'
    outputs through ``output``, and record what they did in ``manifest``."""

    config: StrataConfig
    engines: Engines
    lakehouse: Lakehouse
    run_dir: Path
    manifest: Manifest
    state: State
    mode: str = "run"
    start_model: str | None = None  # refresh: the champion; run: None (the configured base model)
    start_version: str | None = None
    services: dict[str, Any] = field(default_factory=dict)  # refresh: the registry

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    def output(self, step_name: str, key: str, default: Any = None) -> Any:
        return self.state.outputs(step_name).get(key, default)


def table_fingerprint(spark: Any, lakehouse: Lakehouse, name: str) -> str:
    """Content hash of a table (row count + sum of row hashes): unchanged by a no-op MERGE, which still
    writes a new Delta version."""
    if not lakehouse.exists(name):
        return "absent"
    from pyspark.sql import functions as F

    df = lakehouse.read(spark, name)
    row = df.agg(F.count(F.lit(1)).alias("n"),
                 F.sum(F.xxhash64(*[F.col(c) for c in df.columns]).cast("decimal(38,0)")).alias("h")).collect()[0]
    return f"{row['n']}:{row['h']}"


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(ctx: Context, s: Step) -> str:
    """What a step's result depends on (see module docstring). A table the step also writes (the judge's cache
    of judgments, enrichment's own categories) is its output, not an input: counting it would re-run the step
    every time because it ran."""
    cfg = ctx.config.model_dump(mode="json")
    tables = {t: table_fingerprint(ctx.engines.spark, ctx.lakehouse, t) for t in s.reads if t not in s.writes}
    return digest({"tables": tables, "config": {k: cfg[k] for k in s.sections},
                   "uses": {u: ctx.state.stored(u) for u in s.uses},
                   "start": ctx.start_version if s.start else None})


def _resolve(fn: str) -> Callable[[Context], dict]:
    module, name = fn.split(":")
    return getattr(import_module(module), name)


def _die_after(name: str) -> None:
    if os.environ.get(DIE_AFTER_ENV) == name:
        log.warning("dying after %s's work (%s)", name, DIE_AFTER_ENV)
        os._exit(137)


def select(cfg: StrataConfig, mode: str, only: list[str] | None) -> list[Step]:
    """The steps to execute: the active ones, or just ``only`` (which must be active for this config)."""
    steps = active(cfg, mode)
    if not only:
        return steps
    names = {s.name for s in steps}
    for name in only:
        why = step(name).off_reason(cfg, mode)
        if name not in names:
            raise GraphError(f"step {name!r} does not run for this config: {why}")
    return [s for s in steps if s.name in only]


def _check_uses(ctx: Context, s: Step, names: set[str]) -> None:
    """A step asked for alone (``--only``) needs the outputs of the steps it uses, unless they are off."""
    for need in s.uses:
        if need in names or ctx.state.has(need):
            continue
        known = STEPS.get(need)
        if known is not None and known.off_reason(ctx.config, ctx.mode):
            continue  # off for this config: no outputs to expect
        raise GraphError(f"step {s.name!r} needs the outputs of {need!r}, which has not run in "
                         f"{ctx.state.path.parent} (run it first, or the whole graph)")


def execute(ctx: Context, steps: list[Step], *, skip_unchanged: bool = False,
            on_step: Callable[[Step, dict], None] | None = None) -> dict[str, dict]:
    """Run ``steps`` in order; returns ``{step: {"ran", "seconds", **outputs}}``."""
    done: dict[str, dict] = {}
    names = {x.name for x in steps}
    for s in steps:
        _check_uses(ctx, s, names)
        t0 = time.perf_counter()
        fp = fingerprint(ctx, s) if skip_unchanged and not s.always else ""
        if fp and ctx.state.done(s.name, fp):
            info = {"ran": False, **ctx.state.outputs(s.name)}
            log.info("%s: skipped (inputs unchanged)", s.name)
        else:
            try:
                outputs = _resolve(s.fn)(ctx) or {}
            finally:
                ctx.manifest.timings[s.name] = round(time.perf_counter() - t0, 3)
            _die_after(s.name)
            if not fp and skip_unchanged:  # an `always` step: recorded, never compared
                fp = "always"
            ctx.state.complete(s.name, fp or digest({"run": ctx.run_id}), outputs)
            info = {"ran": True, **outputs}
        info["seconds"] = round(time.perf_counter() - t0, 2)
        done[s.name] = info
        if on_step is not None:
            on_step(s, info)
    return done
