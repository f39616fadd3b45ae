"""Drive a stage on Ray Train: data from ``training_examples`` via Ray Data, checkpoints under the run dir,
resume from the latest checkpoint, and the final model in sentence-transformers format.

``train(...)`` runs Stage 1, Stage 2 or both (Stage 2 starts from Stage 1's model). Layout under ``out``:
``groups/`` (the query groups Spark built, parquet; see ``strata.train.groups``), ``stage1/model``,
``stage2/model`` (sentence-transformers folders), ``stageN/ray/`` (Ray Train storage with the
checkpoints; ``groups/`` and the checkpoints go to ``train.storage`` instead when set, for clusters whose nodes
share no filesystem), ``mlruns/`` (MLflow file store unless a URI is configured), ``model`` = the last stage's model,
``train.json`` (steps, examples/s, data counts, checkpoints used).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from strata.ship import ship
from strata.storage import ObjectPath, StoragePath, location
from strata.train.config import LoopConfig, TrainConfig
from strata.train.groups import AugmentConfig, Groups, build_groups, ray_dataset
from strata.train.loop import PROBE_FILE, STATE_FILE, total_steps, train_loop_per_worker

log = logging.getLogger(__name__)

# Embedded by the worker at the end of a stage; ``stageN/probe_embeddings.npy`` vs the reloaded model is the
# save/reload check.
PROBE_TEXTS = ("cordless drill", "Whirlpool 1.9 cu. ft. Over the Range Microwave in Stainless Steel",
               "xbox 360 games", "wood deck screws 3 in")


@dataclass
class StageResult:
    stage: int
    model_dir: str
    steps: int
    groups: int
    seconds: float
    examples_per_s: float
    resumed_from_step: int | None
    final_loss: float | None
    metrics: dict = field(default_factory=dict)


def _check_weights(ckpt: Path) -> None:
    """Raise unless the checkpoint's model is whole. Ray persists a checkpoint's files in parallel, so a run
    killed mid-persist can leave a complete state file next to torn weights (safetensors checks its size)."""
    from safetensors import safe_open

    weights = sorted(ckpt.glob("*.safetensors"))
    if not weights or not (ckpt / "modules.json").is_file():
        raise FileNotFoundError(f"{ckpt}: no model weights or modules.json")
    for w in weights:
        with safe_open(str(w), "pt"):
            pass


def latest_checkpoint(storage: "StoragePath") -> "tuple[StoragePath | None, int]":
    """The checkpoint with the highest saved step under a Ray Train storage folder (None, -1 if none). In object
    storage nothing is downloaded but the small state file: each object is whole once listed, and a weights
    file's listed size must match its safetensors header. The location returned is what the workers read
    (``ray.train.Checkpoint`` takes a folder or a URI)."""
    import torch

    best, best_step = None, -1
    for state in _state_files(storage):
        try:
            if isinstance(state, ObjectPath):
                _check_remote_weights(state.parent)
                with state.fs.open_input_stream(state.bucket_path) as f:
                    raw = io.BytesIO(f.read())
                step = int(torch.load(raw, map_location="cpu", weights_only=True)["step"])
            else:
                step = int(torch.load(state, map_location="cpu", weights_only=True)["step"])
                _check_weights(state.parent)
        except Exception as e:  # noqa: BLE001 - a half-written checkpoint is skipped, not fatal
            log.warning("ignoring unreadable checkpoint %s (%s: %s)", state.parent, type(e).__name__, e)
            continue
        if step > best_step:
            best, best_step = state.parent, step
    return best, best_step


def _state_files(storage: "StoragePath") -> list:
    """Every checkpoint's state file under ``storage`` (a listing, nothing read)."""
    if not isinstance(storage, ObjectPath):
        return list(Path(storage).glob(f"**/{STATE_FILE}"))
    import pyarrow.fs as pafs

    infos = storage.fs.get_file_info(pafs.FileSelector(storage.bucket_path, recursive=True, allow_not_found=True))
    return [ObjectPath(f"{storage.scheme}://{i.path}") for i in infos
            if i.type == pafs.FileType.File and i.base_name == STATE_FILE]


def _check_remote_weights(ckpt: ObjectPath) -> None:
    """``_check_weights`` for a checkpoint in object storage, from the listing and each weights file's header
    (its first bytes): modules.json is there and every .safetensors object is as long as its header says."""
    listed = {p.name: p for p in ckpt.iterdir()}
    weights = [p for n, p in listed.items() if n.endswith(".safetensors")]
    if not weights or "modules.json" not in listed:
        raise FileNotFoundError(f"{ckpt}: no model weights or modules.json")
    fs = ckpt.fs
    for w in weights:
        with fs.open_input_file(w.bucket_path) as f:
            size = f.size()
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if size != 8 + n + end:
            raise ValueError(f"{w}: {size} bytes, its header says {8 + n + end}")


def shared_root(cfg: TrainConfig, out: Path) -> "StoragePath":
    """Where the training groups and Ray Train's checkpoints go: ``out`` itself, or with ``train.storage`` set
    (an object store every node reaches), a folder of its own there named after ``out``, so a rerun of the same
    run directory finds its groups and checkpoints again."""
    if not cfg.storage:
        return out
    from strata.mirror import remote_for
    from strata.text import stable_hash

    key = remote_for(out)  # a run folder on an object store: its URI, not this process's copy of it
    name = key.rstrip("/").rsplit("/", 2)
    return location(cfg.storage) / f"{name[-2]}-{name[-1]}-{stable_hash(key):016x}"[:80]


def _resolve_base(name: str) -> str:
    from strata.embed.encoder import resolve_model

    return resolve_model(name)


def cpus_left_for_data(cluster_cpus: float, cfg: TrainConfig) -> float:
    """CPUs the train workers leave for Ray Data's read tasks. A GPU worker still holds its
    ``cpus_per_worker`` (the ScalingConfig asks for them beside the GPU), so GPU runs count them too."""
    return cluster_cpus - cfg.workers * cfg.cpus_per_worker


def train_stage(engines: Any, groups: Groups, cfg: TrainConfig, stage: int, init_model: str,
                out: Path, storage: "StoragePath | None" = None) -> StageResult:
    """One stage on Ray Train; resumes from the latest checkpoint in ``storage`` (Ray Train's storage; default
    ``out/ray``) when one exists."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    scfg = cfg.stage1 if stage == 1 else cfg.stage2
    n = groups.count(stage)
    if not n:
        raise ValueError(f"stage {stage}: no usable query groups (stage 1 needs a positive per query, stage 2 "
                         "two grades)")
    steps = total_steps(n, scfg.queries_per_batch, scfg.epochs, cfg.workers, scfg.max_steps)
    out.mkdir(parents=True, exist_ok=True)
    storage = location(storage) if storage is not None else (out / "ray").resolve()
    resume, resume_step = latest_checkpoint(storage)
    loop_cfg = LoopConfig(
        train=cfg, stage=stage, init_model=init_model, total_steps=steps,
        shuffle_buffer=max(64, 4 * scfg.queries_per_batch),
        mlflow_uri=cfg.mlflow_uri or (out.parent / "mlruns").resolve().as_uri(),
        with_teacher=stage == 2 and cfg.stage2.uses_teachers, probe_texts=tuple(PROBE_TEXTS),
        resume_checkpoint=str(resume) if resume else None,
        # Fault injection for the resume tests (read in the driver, so it reaches the workers).
        crash_at_step=int(os.environ["STRATA_TRAIN_CRASH_AT"]) if os.environ.get("STRATA_TRAIN_CRASH_AT") else None,
    )
    ray = engines.ray()
    if resume is None:  # a resumed run starts from its checkpoint, not from init_model
        loop_cfg = loop_cfg.model_copy(update={"init_folder": ship(ray, init_model)})
    cols = ("query", "texts", "pids", "grades", "scores")
    if loop_cfg.with_teacher:
        cols += ("teachers", "judged")  # the judge's soft grades and which rows are the judge's
    ds = ray_dataset(ray, groups, stage, cols)
    free = cpus_left_for_data(float(ray.cluster_resources().get("CPU", 0)), cfg)
    if free < 1:
        # Workers that take every CPU leave none for Ray Data's read tasks, which would then wait forever:
        # read the groups into the object store first (spilled to disk if large), then train.
        log.info("stage %d: train workers take all but %.1f CPUs; reading the groups before training", stage, free)
        ds = ds.materialize()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_cfg,
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker={"CPU": cfg.cpus_per_worker}),
        run_config=RunConfig(name=f"stage{stage}", storage_path=str(storage),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
                             failure_config=FailureConfig(max_failures=cfg.max_failures)),
        datasets={"train": ds},
    )
    if resume:
        log.info("stage %d: resuming from %s (step %d of %d)", stage, resume, resume_step, steps)
    t0 = time.perf_counter()
    result = trainer.fit()
    secs = time.perf_counter() - t0
    if result.checkpoint is None:
        raise RuntimeError(f"stage {stage}: Ray Train finished without a checkpoint ({result.error})")
    model_dir = out / "model"
    tmp = out / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with result.checkpoint.as_directory() as d:
        shutil.copytree(d, tmp, ignore=shutil.ignore_patterns(STATE_FILE, PROBE_FILE))
        if (Path(d) / PROBE_FILE).is_file():
            shutil.copy(Path(d) / PROBE_FILE, out / PROBE_FILE)
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.rename(model_dir)
    m = result.metrics or {}
    return StageResult(stage, str(model_dir), int(m.get("step", steps)), n, round(secs, 1),
                       round(float(m.get("examples_per_s", 0.0)), 2), resume_step if resume else None,
                       m.get("loss"), {k: v for k, v in m.items() if isinstance(v, (int, float, str, bool))})


def train(engines: Any, lakehouse: Any, cfg: TrainConfig, stages: str, out: str | Path,
          init_model: str | None = None) -> dict[str, Any]:
    """Stage 1, 2 or both from ``training_examples``; returns (and writes ``out/train.json``) the summary."""
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if stages not in ("1", "2", "both"):
        raise ValueError(f"stage must be 1, 2 or both (got {stages!r})")
    shared = shared_root(cfg, out)
    groups = build_groups(engines.spark, lakehouse, shared / "groups", cfg.catalogs or None,
                          AugmentConfig(cfg.spelling_rate, cfg.synthetic_queries, cfg.synthetic_generator, cfg.seed))
    aug = groups.augmentation()
    log.info("train: %d query groups (%s)", groups.groups, aug)
    model = _resolve_base(init_model or cfg.base_model)  # a champion at a URI: its local copy
    results = []
    for stage in ((1, 2) if stages == "both" else (int(stages),)):
        if stage == 2 and stages == "both":
            model = results[-1].model_dir
        res = train_stage(engines, groups, cfg, stage, model, out / f"stage{stage}",
                          shared / f"stage{stage}" / "ray" if cfg.storage else None)
        results.append(res)
        log.info("stage %d: %d steps in %.0fs (%.1f examples/s) -> %s", stage, res.steps, res.seconds,
                 res.examples_per_s, res.model_dir)
    final = out / "model"
    shutil.rmtree(final, ignore_errors=True)
    shutil.copytree(results[-1].model_dir, final)
    summary = {"model": str(final), "stages": [asdict(r) for r in results], "augmentation": aug,
               "groups": groups.groups, "synthetic_groups": groups.misspelled_copies + groups.synthetic_queries,
               "groups_path": groups.path,
               "config": cfg.model_dump()}
    (out / "train.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
