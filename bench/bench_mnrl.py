"""The MNRL peer alone at a given step budget (the same ``train_mnrl`` as ``bench_train.py``, same data and
hyper-parameters), evaluated on the dev split: one side of the step-budget experiment, run next to
``bench_stage1_variants.py --steps N`` (two processes at 1 thread each on 2 cores).

    .venv/bin/python bench/bench_mnrl.py --lakehouse LH --dataset HD_DEV_BEIR --steps 900 --out /tmp/budget/mnrl
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
from bench_train import train_mnrl  # noqa: E402


def main() -> None:
    ap = variant_loop.arguments(steps=500, lr=5e-5)
    ap.add_argument("--lakehouse", required=True)
    ap.add_argument("--catalog", default="homedepot")
    ap.add_argument("--negatives", type=int, default=3)
    ap.add_argument("--positives", type=int, default=1,
                    help="rows per query, one per top-grade product (>1 uses the no-duplicates batch sampler)")
    a = ap.parse_args()

    import torch

    from strata.engines import EngineConfig
    from strata.engines import Engines
    from strata.tables import Lakehouse
    from strata.train.groups import build_groups, read_groups

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with Engines(EngineConfig()) as eng:  # the peer's data: the same query groups, without augmentation
        groups = read_groups(build_groups(eng.spark, Lakehouse(a.lakehouse), out / "groups", [a.catalog]))
    res = {"args": vars(a), "command": " ".join(sys.argv),
           "mnrl": train_mnrl(groups, out, a.steps, a.batch, a.negatives, a.lr, a.seq, a.seed,
                                 a.positives)}
    res["quality"] = variant_loop.evaluate(str(out / "model"), a.dataset, a.seq)
    (out / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
