"""Embedding inference fanned out with Ray Data, plus the in-process equivalent.

Ray Data gives one code path for a laptop (fractional-CPU actors) and a GPU cluster (one actor per GPU):
rows carry their input index so the result is put back in input order whatever order blocks finish in.
The in-process variant exists for small inputs, tests and measuring what Ray costs.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa

from strata.embed.config import EmbedConfig
from strata.embed.encoder import BASELINE, encode, load_encoder, resolve_backend, resolve_model
from strata.ship import Shipped, here, ship

log = logging.getLogger(__name__)

# Rows per Ray Data block, in batches: a few batches per block keeps per-task overhead low while
# leaving enough blocks to balance several actors and to move the progress bar.
_BATCHES_PER_BLOCK = 4


def torch_threads(actor_cpus: float, actors: int, node_cpus: int) -> int:
    """Intra-op threads for one actor: its CPU reservation, or its share of a node's cores if larger.

    Ray's CPU numbers are only scheduling tokens. On a small machine the actors reserve a fraction of a
    CPU (so Ray Data keeps CPU for its own tasks), yet one thread per actor would leave cores idle:
    measured on 2 cores, 1 actor with 2 threads embeds ~25% faster than with 1.
    """
    return max(1, int(actor_cpus), node_cpus // max(1, actors))


def _node_cpus(ray: Any) -> int:
    """CPUs Ray sees on its largest node (respects a local Ray started with fewer than all cores)."""
    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return int(max(cpus, default=os.cpu_count() or 1))


class EncodeBatches:
    """Ray Data actor: loads the encoder once, then embeds each ``{"idx", "text"}`` batch."""

    def __init__(
        self, model: "str | Shipped", max_seq_length: int, batch_size: int, device: str, threads: int,
        backend: str = "torch",
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model = load_encoder(here(model), max_seq_length=max_seq_length, device=device, backend=backend,
                                  threads=threads)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        vecs = encode(self.model, [str(t) for t in batch["text"]], batch_size=self.batch_size)
        return {"idx": np.asarray(batch["idx"], dtype=np.int64), "emb": vecs}


def _model_for_workers(model: str) -> str:
    """``baseline`` stays symbolic (each worker resolves its own installed copy); a dir becomes absolute."""
    return BASELINE if model == BASELINE else resolve_model(model)


def embed_texts(engines: Any, texts: list[str], cfg: EmbedConfig, desc: str = "embed") -> np.ndarray:
    """Embed ``texts`` with a Ray Data actor pool; rows come back in input order (float32, normalised).

    A model folder reaches actors on other nodes through Ray's object store (``strata.ship``); ``baseline``
    resolves to each worker's installed copy.
    """
    n = len(texts)
    if n == 0:
        return embed_texts_local(texts, cfg)
    ray = engines.ray()
    model = _model_for_workers(cfg.model)
    device = "cuda" if cfg.actor_gpus > 0 else "cpu"
    # Rows go out shortest first: a batch is padded to its longest text, so batches of similar lengths
    # waste little compute (what sentence-transformers does in-process, but across all batches).
    order = np.argsort(np.fromiter((len(t) for t in texts), dtype=np.int64, count=n), kind="stable")
    block_rows = cfg.batch_size * _BATCHES_PER_BLOCK
    blocks = [
        pa.table(
            {
                "idx": pa.array(order[s : s + block_rows]),
                "text": pa.array([str(texts[i]) for i in order[s : s + block_rows]], type=pa.string()),
            }
        )
        for s in range(0, n, block_rows)
    ]
    ds = ray.data.from_arrow(blocks).map_batches(
        EncodeBatches,
        fn_constructor_kwargs={
            "model": ship(ray, model) if model != BASELINE else model,
            "max_seq_length": cfg.max_seq_length,
            "batch_size": cfg.batch_size,
            "device": device,
            "threads": torch_threads(cfg.actor_cpus, cfg.actors, _node_cpus(ray)),
            "backend": resolve_backend(cfg.backend, device),  # `auto` decided once, in the driver
        },
        batch_size=cfg.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=cfg.actors),  # a fixed pool (`concurrency` is deprecated)
        num_cpus=cfg.actor_cpus,
        num_gpus=cfg.actor_gpus or None,
    )
    log.info("%s: %d texts on %d Ray actor(s) (%s cpu each)", desc, n, cfg.actors, cfg.actor_cpus)
    t0 = time.perf_counter()
    idx_parts: list[np.ndarray] = []
    emb_parts: list[np.ndarray] = []
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        idx_parts.append(np.asarray(batch["idx"], dtype=np.int64))
        emb_parts.append(np.asarray(batch["emb"], dtype=np.float32))
    idx = np.concatenate(idx_parts)
    emb = np.concatenate(emb_parts)
    back = np.argsort(idx, kind="stable")
    if not np.array_equal(idx[back], np.arange(n)):
        raise RuntimeError(f"{desc}: Ray Data returned {len(idx)} rows for {n} inputs (lost or duplicated)")
    secs = time.perf_counter() - t0
    log.info("%s: %d texts in %.1fs (%.0f texts/s)", desc, n, secs, n / max(secs, 1e-9))
    return np.ascontiguousarray(emb[back])


def embed_texts_local(texts: list[str], cfg: EmbedConfig) -> np.ndarray:
    """Same vectors as :func:`embed_texts`, computed in this process."""
    model = load_encoder(cfg.model, max_seq_length=cfg.max_seq_length, backend=cfg.backend)
    return encode(model, list(texts), batch_size=cfg.batch_size)

