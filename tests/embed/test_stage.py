"""The embed stage's catalog-scale option: ``index=ivfpq`` streams the vectors to disk and gives the same
artefact (ids, vectors.npy) as the in-RAM path, with an IVF-PQ index."""

from __future__ import annotations

import json

import faiss
import numpy as np

from strata.embed.config import EmbedConfig
from strata.embed.stage import embed_catalog


def test_ivfpq_embed_stage_writes_the_same_vectors_from_disk(tmp_path, products_lakehouse):
    lh = products_lakehouse(tmp_path / "lh", 400)  # 300 products in catalog "shop"
    flat = embed_catalog(None, lh, "shop", EmbedConfig(max_seq_length=16, stream_rows=64), tmp_path / "flat")
    ivf = embed_catalog(None, lh, "shop", EmbedConfig(max_seq_length=16, stream_rows=64, index="ivfpq"),
                        tmp_path / "ivf")
    assert (flat.products, ivf.products) == (300, 300)
    assert (tmp_path / "flat" / "ids.txt").read_text() == (tmp_path / "ivf" / "ids.txt").read_text()
    np.testing.assert_allclose(np.load(tmp_path / "ivf" / "vectors.npy"), np.load(tmp_path / "flat" / "vectors.npy"),
                               atol=1e-6)
    assert type(faiss.read_index(str(tmp_path / "ivf" / "index.faiss"))).__name__ == "IndexIVFPQ"
    assert json.loads((tmp_path / "ivf" / "meta.json").read_text())["index"] == "IndexIVFPQ"
    assert sorted(p.name for p in (tmp_path / "ivf").iterdir()) == ["ids.txt", "index.faiss", "meta.json",
                                                                     "vectors.npy"]  # no spill files left
