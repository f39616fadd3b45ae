"""Stage 1 loss/sampling variants at a fixed step budget: which choices move Home Depot dev quality.

A plain torch loop (``variant_loop.py``; no Ray: the variants differ only in loss and sampling, so the Ray
Train wrapper is left out to run two variants side by side on 2 cores) over the library's own pieces: ``build_groups`` +
``read_groups`` for data (Spark-built query groups with the augmentation), ``sample_batch`` for rows, ``GradedSupConLoss`` for the loss.
Same model, seq length, batch (32 queries x 4 rows), lr schedule (10% warm-up, linear decay) and seed for
every variant; quality = full-corpus retrieval on the BEIR dev export (``evaluate_beir``).

    .venv/bin/python bench/bench_stage1_variants.py --lakehouse LH --dataset HD_DEV_BEIR --partials graded \
        --steps 200 --out /tmp/s1v/graded          # prints and writes OUT/result.json

Results of these runs are in BENCHMARKS.md (Training, "Stage 1 variants").
"""

from __future__ import annotations

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
    ap = variant_loop.arguments(steps=200, lr=5e-5)
    ap.add_argument("--lakehouse", required=True)
    ap.add_argument("--catalog", default="homedepot")
    ap.add_argument("--partials", default="graded", choices=("graded", "negative", "ignore"))
    ap.add_argument("--symmetric", type=float, default=0.0)
    ap.add_argument("--spelling", type=float, default=0.1, help="share of queries given a misspelled copy")
    ap.add_argument("--synthetic", type=int, default=0, help="template synthetic queries")
    ap.add_argument("--positives", type=int, default=1, help="top-grade rows per query per step")
    ap.add_argument("--negatives", type=int, default=3)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--hard-temperature", type=float, default=None,
                    help="draw irrelevant rows with weight exp(mining score / T) (default: uniform)")
    ap.add_argument("--cache-dir", default=None, help="embedding cache for the evaluation")
    a = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from strata.engines import EngineConfig
    from strata.embed.encoder import resolve_model
    from strata.tables import Lakehouse
    from strata.engines import Engines
    from strata.train.data import sample_batch
    from strata.train.groups import AugmentConfig, build_groups, read_groups
    from strata.train.losses import GradedSupConLoss

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with Engines(EngineConfig()) as eng:
        g = build_groups(eng.spark, Lakehouse(a.lakehouse), out / "groups", [a.catalog],
                         AugmentConfig(a.spelling, a.synthetic, "template", 13))
    aug = g.augmentation()
    data = read_groups(g, stage=1)
    model = SentenceTransformer(resolve_model("baseline"), device="cpu", local_files_only=True)
    model.max_seq_length = a.seq
    secs, ema = variant_loop.train(
        model, data, a.steps, a.batch, a.lr,
        lambda b, rng: sample_batch(b, 1, rng, a.negatives, partials=a.partials,
                                    hard_temperature=a.hard_temperature, positives=a.positives),
        GradedSupConLoss(a.temperature, a.partials, a.symmetric), seed=a.seed)
    model.save(str(out / "model"))
    quality = variant_loop.evaluate(str(out / "model"), a.dataset, a.seq, a.cache_dir)
    res = {"args": vars(a), "groups": int(len(data)), "augmentation": aug, "train_seconds": round(secs, 1),
           "final_loss": ema, "quality": quality, "command": " ".join(sys.argv)}
    (out / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
