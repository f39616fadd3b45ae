"""``embed:`` in a profile: which bi-encoder embeds products and queries, and how (Ray Data actors, batch,
cache, index)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from strata.config_base import StrictModel


class EmbedConfig(StrictModel):
    """Off-the-shelf or trained bi-encoder inference on Ray Data."""

    model: str = Field("baseline", description="'baseline' (packaged all-MiniLM-L6-v2) or a model dir")
    backend: Literal["torch", "torch-bf16", "onnx", "onnx-int8", "auto"] = Field(
        "torch", description="inference engine: torch (sentence-transformers, fp32), torch-bf16 (the same under bf16 "
        "autocast: about 2x on CPUs with AMX / AVX512-BF16, slower than fp32 on CPUs without), onnx (ONNX Runtime, "
        "fp32), onnx-int8 (ONNX Runtime, int8 weights: faster on older CPUs, less exact), or auto (torch-bf16 where "
        "the CPU computes bf16 natively, else torch; torch on GPU actors). An ONNX export is cached by model id; "
        "vectors of each backend are cached apart")
    batch_size: int = Field(128, ge=1)
    max_seq_length: int | None = Field(None, ge=8, le=512, description="None = the model's own limit")
    actors: int = Field(1, ge=1, description="embedding actors (GPU workers on a cluster)")
    actor_cpus: float = Field(1.0, gt=0, description="fractional CPUs per actor; <1 on small machines")
    actor_gpus: float = Field(0.0, ge=0)
    ray_min_texts: int = Field(
        512, ge=0, description="fewer texts than this are embedded in the driver (the model loaded once there), "
        "not by a Ray Data job: starting its actor and model costs ~15-20 s, more than embedding a few hundred "
        "texts (a query set, a small catalog); 0 = always Ray")
    cache_dir: str | None = Field(
        None, description="embedding cache root (by model id + text hash); None disables it"
    )
    stream_rows: int = Field(
        20_000, ge=1, description="catalog products read and embedded per step (embed, mining): bounds the "
        "driver's text in memory; the vectors of the whole catalog (n x dim float32) are still held"
    )
    index: Literal["auto", "flat", "hnsw", "ivfpq"] = Field(
        "auto", description="the embed stage's index.faiss; ivfpq: the vectors stream to disk (vectors.npy is "
        "written in chunks) and the index holds PQ codes, so the catalog's vectors are never all in RAM")
