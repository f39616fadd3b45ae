"""Stage 2 loss/sampling variants from one Stage 1 checkpoint at a fixed step budget: which choices let Stage 2
add to Stage 1 on Home Depot dev instead of taking away from it.

Same plain torch loop as the Stage 1 variants (``variant_loop.py``) over the library's pieces: ``read_groups``
(an existing groups folder, e.g. the one ``bench_train.py`` trained on), ``sample_batch(stage=2)`` for rows,
``MultiClassCircleLoss`` and ``GradedSupConLoss`` for the loss. ``--supcon W`` adds W x the Stage 1 loss on the
same batch to the circle loss (``--circle 0`` leaves the Stage 1 loss alone: a control that only continues
Stage 1 with Stage 2's sampling and schedule).

    .venv/bin/python bench/bench_stage2_variants.py --groups WORK/strata/groups --init STAGE1_MODEL \
        --dataset HD_DEV_BEIR --steps 100 --supcon 1 --out /tmp/s2v/both     # prints and writes OUT/result.json
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
    ap = variant_loop.arguments(steps=100, lr=1e-5)
    ap.add_argument("--groups", required=True, help="groups folder written by build_groups")
    ap.add_argument("--init", required=True, help="Stage 1 model dir")
    ap.add_argument("--rows", type=int, default=4, help="rows per query (every grade present, then filled)")
    ap.add_argument("--circle", type=float, default=1.0, help="weight of the circle loss")
    ap.add_argument("--supcon", type=float, default=0.0, help="weight of the Stage 1 loss on the same batch")
    ap.add_argument("--optima", type=float, nargs=3, default=(0.0, 0.5, 1.0))
    ap.add_argument("--margins", type=float, nargs=3, default=(0.25, 0.25, 0.25))
    ap.add_argument("--gamma", type=float, default=32.0)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--skip-train", action="store_true", help="only evaluate --init (the control)")
    a = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from strata.train.data import sample_batch
    from strata.train.groups import read_groups
    from strata.train.losses import GradedSupConLoss, MultiClassCircleLoss

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res = {"args": vars(a), "command": " ".join(sys.argv)}
    model_dir = a.init
    if not a.skip_train:
        data = read_groups(a.groups, stage=2)
        model = SentenceTransformer(a.init, device="cpu", local_files_only=True)
        model.max_seq_length = a.seq
        circle = MultiClassCircleLoss(tuple(a.optima), tuple(a.margins), a.gamma, True)
        supcon = GradedSupConLoss(a.temperature, "graded")

        def loss_fn(q, p, o, g, pid):
            loss = a.circle * circle(q, p, o, g, pid) if a.circle else 0.0
            return loss + a.supcon * supcon(q, p, o, g, pid) if a.supcon else loss

        secs, ema = variant_loop.train(
            model, data, a.steps, a.batch, a.lr,
            lambda b, rng: sample_batch(b, 2, rng, rows_per_query=a.rows), loss_fn, seed=a.seed)
        model_dir = str(out / "model")
        model.save(model_dir)
        res.update(groups=int(len(data)), train_seconds=round(secs, 1), final_loss=ema)
    res["quality"] = variant_loop.evaluate(model_dir, a.dataset, a.seq)
    (out / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
