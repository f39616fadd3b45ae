"""DenseRetriever (``strata.embed.retriever``): which calls go to Ray Data (embed.ray_min_texts) and that the
split changes no vector."""

from __future__ import annotations

import numpy as np

import strata.embed.retriever as retriever
from strata.embed.config import EmbedConfig
from strata.embed.ray_embed import embed_texts_local


def _spy(monkeypatch) -> list[int]:
    """Replaces the Ray Data call by the in-process one (same vectors, tested in tests/embed) and records sizes."""
    calls: list[int] = []

    def fake(engines, texts, cfg, desc="embed"):
        assert engines == "engines"
        calls.append(len(texts))
        return embed_texts_local(texts, cfg)

    monkeypatch.setattr(retriever, "embed_texts", fake)
    return calls


def test_small_calls_embed_in_process_large_ones_on_ray(monkeypatch) -> None:
    calls = _spy(monkeypatch)
    cfg = EmbedConfig(batch_size=8, max_seq_length=32, ray_min_texts=5)
    dense = retriever.DenseRetriever("baseline", cfg, engines="engines")
    docs = [f"cordless drill model {i}" for i in range(6)] + ["garden hose"]
    dense.index([f"d{i}" for i in range(len(docs))], docs)  # 7 texts: Ray
    run = dense.search({"q1": "hose for the garden", "q2": "drill"}, k=3)  # 2 texts: in-process
    assert calls == [7]
    assert next(iter(run["q1"])) == "d6"
    # the in-process vectors are the ones Ray would give: same neighbours, same scores
    ray_all = retriever.DenseRetriever("baseline", cfg.model_copy(update={"ray_min_texts": 0}), engines="engines")
    ray_all.index([f"d{i}" for i in range(len(docs))], docs)
    want = ray_all.search({"q1": "hose for the garden", "q2": "drill"}, k=3)
    assert calls == [7, 7, 2]
    for q in run:
        assert list(run[q]) == list(want[q])
        np.testing.assert_allclose(list(run[q].values()), list(want[q].values()), atol=1e-5)


def test_zero_means_always_ray_and_no_engines_means_never(monkeypatch) -> None:
    calls = _spy(monkeypatch)
    cfg = EmbedConfig(batch_size=8, max_seq_length=32, ray_min_texts=0)
    retriever.DenseRetriever("baseline", cfg, engines="engines").embed(["drill"], "one")
    assert calls == [1]
    retriever.DenseRetriever("baseline", cfg, engines=None).embed(["drill", "hose"], "local")
    assert calls == [1]
