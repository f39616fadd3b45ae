"""Embedding throughput: Strata's Ray Data actor pool vs plain in-process sentence-transformers (the peer).

Same model, texts, batch size and sequence length; runs are interleaved (peer, strata, peer, ...) so machine
noise hits both alike, and the ratio of medians is the number to read. Ray start-up is excluded (it is paid
once per job) but each Ray run includes actor start and model load, as a real job does.

    .venv/bin/python bench/bench_embed.py --n 4000 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from strata.embed.config import EmbedConfig  # noqa: E402
from strata.engines import EngineConfig
from strata.ingest.config import default_data_root
from strata.engines import Engines  # noqa: E402


def home_depot_titles(n: int) -> list[str]:
    path = Path(os.environ.get("STRATA_DATA") or default_data_root()) / "homedepot" / "train.csv.gz"
    seen: dict[str, None] = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            seen.setdefault(row["product_title"], None)
            if len(seen) >= n:
                break
    return list(seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-seq-length", type=int, default=48)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embed.json")
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from strata.embed.encoder import resolve_model
    from strata.embed.ray_embed import embed_texts

    texts = home_depot_titles(args.n)
    cfg = EmbedConfig(batch_size=args.batch_size, max_seq_length=args.max_seq_length, actors=1, actor_cpus=0.5)
    torch.set_num_threads(os.cpu_count() or 1)
    peer = SentenceTransformer(resolve_model("baseline"), device="cpu")
    peer.max_seq_length = args.max_seq_length
    peer.encode(texts[:256], batch_size=args.batch_size)  # warm-up

    peer_s: list[float] = []
    strata_s: list[float] = []
    max_diff = 0.0
    with Engines(EngineConfig(ray_num_cpus=os.cpu_count())) as eng:
        eng.ray()
        for _ in range(args.repeats):
            t = time.perf_counter()
            ref = peer.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
            peer_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            got = embed_texts(eng, texts, cfg, desc="bench")
            strata_s.append(time.perf_counter() - t)
            max_diff = max(max_diff, float(abs(ref - got).max()))

    p, s = statistics.median(peer_s), statistics.median(strata_s)
    result = {
        "benchmark": "embed",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "command": f"python bench/bench_embed.py --n {args.n} --repeats {args.repeats}",
        "texts": len(texts),
        "batch_size": args.batch_size,
        "max_seq_length": args.max_seq_length,
        "peer_seconds": [round(x, 2) for x in peer_s],
        "strata_seconds": [round(x, 2) for x in strata_s],
        "peer_texts_per_s": round(len(texts) / p, 1),
        "strata_texts_per_s": round(len(texts) / s, 1),
        "strata_over_peer_time": round(s / p, 2),
        "max_abs_diff": max_diff,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    sys.stdout.flush()
    os._exit(0)  # skip delta-rs / Ray teardown noise; results are written


if __name__ == "__main__":
    main()
