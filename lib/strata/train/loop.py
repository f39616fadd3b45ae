"""The per-worker training loop (Ray Train ``TorchTrainer``): one stage, checkpoint every K steps, resume.

Runs the same on 1 CPU worker here (gloo) and N GPU workers on a cluster (NCCL, DDP via
``prepare_model``). A checkpoint is the model in sentence-transformers format plus ``trainer_state.pt``
(optimizer, scheduler, step, epoch, MLflow run id), loaded with ``weights_only=True``: resuming after a
killed worker (Ray restarts the group from the latest checkpoint) or a killed run (the runner passes the
latest checkpoint back in) continues at the saved step with the same learning-rate schedule.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from strata.ship import here
from strata.train.config import LoopConfig

STATE_FILE = "trainer_state.pt"
PROBE_FILE = "probe_embeddings.npy"


def _loss(cfg: LoopConfig):
    from strata.train.losses import GradedSupConLoss, MultiClassCircleLoss, WeightedLossSum

    s1, s2 = cfg.train.stage1, cfg.train.stage2
    if cfg.stage == 1:
        return GradedSupConLoss(s1.temperature, s1.partials, s1.symmetric)
    circle = MultiClassCircleLoss(tuple(s2.optima), tuple(s2.margins), s2.gamma, s2.in_batch_negatives)
    cw = float(s2.circle_weight)
    if not cw and not s2.supcon_weight:
        return None  # distillation alone (``_distill``)
    if not s2.supcon_weight:
        return circle if cw == 1.0 else WeightedLossSum((cw, circle))
    supcon = GradedSupConLoss(s1.temperature, s1.partials)
    return WeightedLossSum((cw, circle), (s2.supcon_weight, supcon))


def _distill(cfg: LoopConfig):
    """Stage 2's judge distillation term as (weight, loss), or None when off: KL between the teacher's
    softmax(teacher / distill_temperature) and the student's softmax(cosine / Stage 1 temperature) over each
    query's rows and the in-batch products (``ListwiseDistillLoss``)."""
    from strata.train.losses import ListwiseDistillLoss

    s2 = cfg.train.stage2
    w = float(s2.distill_weight or 0.0)
    if cfg.stage != 2 or w <= 0:
        return None
    return w, ListwiseDistillLoss(cfg.train.stage1.temperature, s2.distill_temperature, s2.in_batch_negatives,
                                  s2.distill_negative_score)


def _draw(cfg: LoopConfig) -> dict[str, Any]:
    """``sample_batch``'s knobs for the stage: Stage 1 draws positives and negatives per query, Stage 2 a fixed
    number of rows per query (``judged_rows`` of them the judge's)."""
    if cfg.stage == 1:
        s1 = cfg.train.stage1
        return {"negatives": s1.negatives, "partials": s1.partials, "hard_temperature": s1.hard_temperature,
                "positives": s1.positives}
    s2 = cfg.train.stage2
    return {"rows_per_query": s2.rows_per_query, "judged_rows": s2.judged_rows}


def _embed(model: Any, texts: list[str], device: Any):
    import torch

    core = model.module if hasattr(model, "module") else model
    feats = core.preprocess(texts)  # `tokenize` is deprecated in sentence-transformers 6
    feats = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in feats.items()}
    out = model(feats)["sentence_embedding"]
    return torch.nn.functional.normalize(out, dim=-1)


def _mlflow(cfg: LoopConfig, run_id: str | None):
    """Start or continue the stage's MLflow run on rank 0 (None if mlflow is unavailable)."""
    try:
        import mlflow
    except ImportError:  # pragma: no cover - mlflow is a dependency; tolerate a trimmed install
        return None
    if cfg.mlflow_uri.startswith("file:"):
        # The default local store is MLflow's file store; MLflow 3 asks for an explicit opt-in to keep it.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(cfg.mlflow_uri)
    mlflow.set_experiment(cfg.train.experiment)
    run = mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name=cfg.run_name)
    if not run_id:
        mlflow.log_params(cfg.params())
    return mlflow


def train_loop_per_worker(cfg: LoopConfig) -> None:
    import ray.train
    import torch
    from ray.train import Checkpoint
    from sentence_transformers import SentenceTransformer

    from strata.train.data import sample_batch
    from strata.precision import autocast
    from strata.schedule import warmup_schedule

    threads = cfg.train.threads or max(1, int(cfg.train.cpus_per_worker))
    torch.set_num_threads(threads)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)

    # A restarted worker group gets Ray's latest checkpoint; a restarted run gets the one the runner found.
    ckpt = ray.train.get_checkpoint()
    if ckpt is None and cfg.resume_checkpoint:
        ckpt = Checkpoint(cfg.resume_checkpoint)  # a local folder or an object-store URI
    state: dict[str, Any] = {}
    if ckpt is not None:
        with ckpt.as_directory() as d:
            model = SentenceTransformer(d, device="cpu", local_files_only=True)
            state = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)
    else:
        start = here(cfg.init_folder) if cfg.init_folder is not None else cfg.init_model
        model = SentenceTransformer(start, device="cpu", local_files_only=True)
    model.max_seq_length = cfg.train.max_seq_length
    # DDP with more than one worker: the BERT pooler (and any module the loss does not reach) gets no gradient,
    # which plain DDP treats as an error at the next step; find_unused_parameters lets those ranks agree.
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})
    loss_fn, distill = _loss(cfg), _distill(cfg)
    scfg = cfg.scfg
    unlabel_judged = cfg.stage == 2 and not cfg.train.stage2.label_judged
    opt = torch.optim.AdamW(model.parameters(), lr=scfg.lr, weight_decay=0.01)
    total = cfg.total_steps
    sched = warmup_schedule(opt, total, scfg.warmup_ratio)
    step, epoch = 0, 0
    if state:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, epoch = int(state["step"]), int(state["epoch"])
    tracker = _mlflow(cfg, state.get("mlflow_run_id") or None) if rank == 0 else None
    mlflow_run_id = tracker.active_run().info.run_id if tracker else ""

    def save(final: bool) -> None:
        metrics = {"step": step, "epoch": epoch, "loss": loss_ema if loss_ema is not None else float("nan"),
                   "examples_per_s": seen / max(time.perf_counter() - t0, 1e-9), "final": final}
        with tempfile.TemporaryDirectory() as d:
            if rank == 0:
                core = model.module if hasattr(model, "module") else model
                core.save(d, safe_serialization=True)
                if final and cfg.probe_texts:
                    # The in-memory model's embeddings of a few fixed texts: the reload check compares them.
                    import numpy as np

                    # Through the unwrapped module: a DDP forward syncs buffers with every rank, and only rank
                    # 0 is here, so it would wait for the others for ever.
                    core.eval()
                    with torch.no_grad():
                        np.save(Path(d) / PROBE_FILE, _embed(core, list(cfg.probe_texts), device).cpu().numpy())
                torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
                            "epoch": epoch, "mlflow_run_id": mlflow_run_id}, Path(d) / STATE_FILE)
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))
            else:
                ray.train.report(metrics)

    shard = ray.train.get_dataset_shard("train")
    t0 = time.perf_counter()
    seen, loss_ema = 0, None
    model.train()
    while step < total:
        rng_epoch = epoch
        it = shard.iter_batches(batch_size=scfg.queries_per_batch, batch_format="numpy",
                                local_shuffle_buffer_size=cfg.shuffle_buffer,
                                local_shuffle_seed=cfg.seed + rng_epoch)
        for batch in it:
            if step >= total:
                break
            rng = random.Random(f"{cfg.seed}-{step}-{rank}")
            q, texts, owner, grade, pid, *extra = sample_batch(batch, cfg.stage, rng, with_teacher=cfg.with_teacher,
                                                               **_draw(cfg))
            if not q:
                continue
            with autocast(cfg.train.precision, device.type):  # losses below run on fp32 copies
                qe = _embed(model, q, device).float()
                pe = _embed(model, texts, device).float()
            owner_t, pid_t = torch.as_tensor(owner, device=device), torch.as_tensor(pid, device=device)
            grade_t, terms = torch.as_tensor(grade, device=device), []
            if loss_fn is not None:
                if unlabel_judged:  # the judge's rows reach the distillation only
                    lab = ~torch.as_tensor(extra[1], dtype=torch.bool, device=device)
                    if lab.any():
                        terms.append(loss_fn(qe, pe[lab], owner_t[lab], grade_t[lab], pid_t[lab]))
                else:
                    terms.append(loss_fn(qe, pe, owner_t, grade_t, pid_t))
            if distill is not None:
                w, fn = distill
                terms.append(w * fn(qe, pe, owner_t, torch.as_tensor(extra[0], device=device), pid_t))
            loss = sum(terms[1:], terms[0])  # never empty: Stage2Config rejects all-zero weights
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            seen += len(texts) * world
            lv = float(loss.detach())
            loss_ema = lv if loss_ema is None else 0.95 * loss_ema + 0.05 * lv
            if tracker and step % cfg.train.log_every == 0:
                tracker.log_metrics({"loss": loss_ema, "lr": sched.get_last_lr()[0],
                                     "examples_per_s": seen / max(time.perf_counter() - t0, 1e-9)}, step=step)
            if step % cfg.train.checkpoint_every == 0 and step < total:
                save(final=False)
            crash = cfg.crash_at_step
            if crash and not state and step == crash:
                os._exit(17)  # fault injection for the resume tests: die like a killed worker (first run only)
        epoch += 1
    save(final=True)
    if tracker:
        tracker.log_metrics({"final_loss": loss_ema or float("nan")}, step=step)
        tracker.end_run()


def total_steps(n_groups: int, queries_per_batch: int, epochs: float, workers: int, max_steps: int | None) -> int:
    per_epoch = max(1, math.ceil(n_groups / (queries_per_batch * workers)))
    steps = max(1, int(per_epoch * epochs))
    return min(steps, max_steps) if max_steps else steps
