"""`strata embed` on a real slice: ingest Home Depot rows, embed the catalog, reload the index and check
it answers like the vectors it was built from; a second run reuses the cache."""

from __future__ import annotations

import json
import subprocess
import sys

import faiss
import numpy as np

STRATA = [sys.executable, "-c", "from strata.cli import main; main()"]


def test_embed_writes_a_loadable_index_and_reuses_the_cache(data_root, tmp_path):
    lh, out, cache = tmp_path / "lh", tmp_path / "idx", tmp_path / "cache"
    r = subprocess.run([*STRATA, "ingest", "--source", "homedepot", "--path",
                        str(data_root / "homedepot" / "train.csv.gz"), "--lakehouse", str(lh), "--limit", "300"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    args = [*STRATA, "embed", "--lakehouse", str(lh), "--catalog", "homedepot", "--out", str(out),
            "--cache-dir", str(cache), "--max-seq-length", "48", "--batch-size", "64"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "meta.json").read_text())
    ids = (out / "ids.txt").read_text().split()
    vecs = np.load(out / "vectors.npy")
    assert meta["products"] == len(ids) == vecs.shape[0] > 100  # 300 label rows = 132 products
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    index = faiss.read_index(str(out / "index.faiss"))
    _, rows = index.search(vecs[:5], 1)
    assert list(rows[:, 0]) == [0, 1, 2, 3, 4]  # each product is its own nearest neighbour
    r2 = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert f"{len(ids)} reused" in r2.stderr.replace("\n", " ") or "0 computed" in r2.stderr
    np.testing.assert_allclose(np.load(out / "vectors.npy"), vecs, atol=1e-6)
