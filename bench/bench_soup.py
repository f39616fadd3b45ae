"""Weight averaging ("model soup", Wortsman et al. 2022) of fine-tunes that share an initialisation: does the
uniform average of several Stage 1 runs retrieve better than each of them?

Fine-tunes from the same start usually lie in one basin, so their average is a valid model; when the runs
differ (seed, batch, negatives) the average can beat every ingredient at no extra training cost, which on a
cluster means N runs in parallel instead of one N times as long.

    .venv/bin/python bench/bench_soup.py --model RUN_A/model --model RUN_B/model --dataset HD_DEV_BEIR \
        --out /tmp/soup      # writes OUT/model and OUT/result.json

Results are in BENCHMARKS.md (Training).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

import variant_loop  # noqa: E402  (bench/ is on sys.path when a script runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="sentence-transformers dir (repeat, >= 2)")
    ap.add_argument("--dataset", required=True, help="BEIR folder of the dev split (strata export-beir)")
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    import torch

    from strata.train.soup import average_models

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    average_models(a.model, out / "model")
    quality = variant_loop.evaluate(str(out / "model"), a.dataset, a.seq, a.cache_dir)
    res = {"ingredients": a.model, "quality": quality, "command": " ".join(sys.argv)}
    (out / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
