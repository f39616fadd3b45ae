"""Embedding cache keyed by (model id, max_seq_length, text hash).

Embedding a catalog is the most expensive step a CPU run does; re-running an evaluation, re-mining after a
config change or a nightly refresh with a few changed products should embed only texts never seen with this
exact model. The cache is append-only shards (``.npz`` of sha1 keys + float32 vectors) per model, written
atomically (temp file + rename), so a killed run leaves either a whole shard or none.

Scale note: shards are loaded into memory per model (384 floats x 50k products = 77 MB); a catalog of
millions wants a columnar store (Delta table of key, vector) instead — the interface stays. A catalog embedded
in steps (``EmbedConfig.stream_rows``) adds one in-memory part per step; lookups gather from the parts
without concatenating them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors for one (model id, max_seq_length) under ``root``."""

    def __init__(self, root: str | Path, model_id: str, max_seq_length: int | None):
        safe = re.sub(r"[^A-Za-z0-9._@-]+", "_", model_id)
        self.dir = Path(root).expanduser() / safe / f"seq{max_seq_length or 'default'}"
        self._keys: dict[str, int] = {}
        self._vecs: list[np.ndarray] = []
        self._dim: int | None = None
        self._load()

    def _load(self) -> None:
        if not self.dir.is_dir():
            return
        rows: list[np.ndarray] = []
        n = 0
        for shard in sorted(self.dir.glob("shard-*.npz")):
            with np.load(shard, allow_pickle=False) as z:
                keys, vecs = z["keys"], z["vecs"]
            if len(keys) != len(vecs):
                log.warning("embedding cache shard %s is inconsistent; ignored", shard)
                continue
            for i, k in enumerate(keys):
                self._keys.setdefault(str(k), n + i)
            rows.append(vecs.astype(np.float32, copy=False))
            n += len(keys)
        if rows:
            self._vecs = [np.concatenate(rows)]
            self._dim = self._vecs[0].shape[1]

    def __len__(self) -> int:
        return len(self._keys)

    def _rows(self, idx: np.ndarray) -> np.ndarray:
        """Vectors at cache rows ``idx``, gathered part by part: a run that embeds a catalog in many steps
        appends one part per step, and concatenating them all on every lookup would copy the cache each time."""
        out = np.empty((len(idx), self._dim or 0), dtype=np.float32)
        start = 0
        for part in self._vecs:
            hit = (idx >= start) & (idx < start + len(part))
            if hit.any():
                out[hit] = part[idx[hit] - start]
            start += len(part)
        return out

    def embed(self, texts: list[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Vectors for ``texts`` in order; ``compute`` is called once, on the distinct unseen texts only."""
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._keys and k not in missing:
                missing[k] = t
        if missing:
            new = np.asarray(compute(list(missing.values())), dtype=np.float32)
            if new.shape[0] != len(missing):
                raise RuntimeError(f"embedder returned {new.shape[0]} vectors for {len(missing)} texts")
            self._write_shard(list(missing), new)
            base = sum(len(v) for v in self._vecs)  # rows so far (shards may repeat a key: not len(_keys))
            for i, k in enumerate(missing):
                self._keys[k] = base + i
            self._vecs.append(new)
            self._dim = new.shape[1]
        log.info("embedding cache %s: %d texts, %d computed, %d reused",
                 self.dir, len(texts), len(missing), len(texts) - len(missing))
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        return self._rows(np.fromiter((self._keys[k] for k in keys), dtype=np.int64, count=len(keys)))

    def _write_shard(self, keys: list[str], vecs: np.ndarray) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"shard-{uuid.uuid4().hex}.npz"
        tmp = final.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.asarray(keys), vecs=vecs)
        os.replace(tmp, final)
