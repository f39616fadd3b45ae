"""A tiny finished run directory (metrics.json, beir/<ds>/, runs/*.run) for analysis/report tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from strata.evaluate.metrics import evaluate_run, write_trec_run
from strata.sources.beir import BeirDataset, write_beir

TITLES = {
    "p1": "cordless drill driver kit", "p2": "hammer drill bits", "p3": "claw hammer steel",
    "p4": "garden hose reel", "p5": "hose nozzle brass", "p6": "led light bulb",
    "p7": "ceiling light fixture", "p8": "paint roller cover", "p9": "interior paint white",
    "p10": "wood screws box",
}
QUERIES = {
    "q1": "drill", "q2": "claw hammer", "q3": "garden hose reel", "q4": "led bulb",
    "q5": "ceiling ligt fixture", "q6": "white interior paint gallon", "q7": "wood screws",
    "q8": "paint roller",
}
QRELS = {
    "q1": {"p1": 2, "p2": 1, "p3": 0}, "q2": {"p3": 2, "p2": 0}, "q3": {"p4": 2, "p5": 1},
    "q4": {"p6": 2}, "q5": {"p7": 2, "p6": 1, "p8": 0}, "q6": {"p9": 2, "p8": 1},
    "q7": {"p10": 2}, "q8": {"p8": 2, "p9": 1, "p1": 0, "p4": 0},
}


def _noisy_run(seed: int, quality: float) -> dict[str, dict[str, float]]:
    """Every doc scored; relevant docs pushed up by ``quality``."""
    rng = np.random.default_rng(seed)
    run = {}
    for q in QUERIES:
        run[q] = {d: float(rng.random() + quality * QRELS[q].get(d, 0)) for d in TITLES}
    return run


def fake_encode(texts: list[str]) -> np.ndarray:
    """Bag-of-words hashing vectors: lexical overlap -> cosine similarity (no model needed)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
    out += 0.01
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def make_run_dir(root: Path, quality_dense: float = 0.6, quality_bm25: float = 0.3, seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    ds = BeirDataset(
        corpus={d: {"title": t, "text": ""} for d, t in TITLES.items()},
        queries=dict(QUERIES), qrels={q: dict(r) for q, r in QRELS.items()}, split="dev", name="toy-dev",
    )
    write_beir(ds, root / "beir" / "toy-dev")
    runs = {"baseline": _noisy_run(seed, quality_dense), "bm25": _noisy_run(seed + 1, quality_bm25)}
    evaluation = {"dataset": "toy-dev", "split": "dev", "num_docs": len(TITLES), "retrievers": {}}
    for name, run in runs.items():
        write_trec_run(run, root / "runs" / f"{name}.run", tag=name)
        evaluation["retrievers"][name] = evaluate_run(ds.qrels, run)
    (root / "metrics.json").write_text(json.dumps(evaluation))
    return root
