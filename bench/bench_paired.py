"""Is a variant better than the control, query by query? Paired bootstrap of nDCG@10 on the dev split.

The variant benchmarks print one mean per model; two means 0.003 apart say nothing on their own. This scores
every model on the same dev queries (full-corpus retrieval, TREC runs kept under OUT/NAME) and compares each
with the first one by ``strata.evaluate.significance.paired_bootstrap`` (queries resampled, 10,000 times):
the difference, its 95% interval and a one-sided p-value. That is the uncertainty from *which queries* the
dev split holds; a second training seed (``--seed`` of the variant scripts) measures the other kind.

    .venv/bin/python bench/bench_paired.py --dataset HD_DEV_BEIR --out /tmp/pairs \
        ctrl=RUN_A/model seed14=RUN_B/model soup=SOUP/model     # first = the control
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="NAME=MODEL_DIR (or NAME=bm25 / NAME=baseline); the first is the control")
    ap.add_argument("--dataset", required=True, help="BEIR folder of the dev split (strata export-beir)")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--metric", default="ndcg@10")
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=None, help="embedding cache (the variant runs' evaluation cache)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if len(a.models) < 2 or any("=" not in m for m in a.models):
        ap.error("give at least two NAME=MODEL_DIR arguments")
    models = dict(m.split("=", 1) for m in a.models)
    if len(models) < len(a.models):
        ap.error("model names must be distinct")

    import torch

    from strata.embed.config import EmbedConfig
    from strata.evaluate.analysis import read_trec_run
    from strata.evaluate.beir_eval import evaluate_beir
    from strata.evaluate.metrics import evaluate_run
    from strata.evaluate.significance import paired_bootstrap
    from strata.sources.beir import read_beir

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    ds = read_beir(a.dataset, split=a.split)
    cfg = EmbedConfig(max_seq_length=a.seq, batch_size=128, cache_dir=a.cache_dir)
    per, means = {}, {}
    for name, path in models.items():
        runs = out / name
        if not any(runs.glob("*.run")):  # kept runs are reused: add a model without re-scoring the others
            evaluate_beir(ds, [path], k=100, embed_cfg=cfg, runs_out=runs)
        ev = evaluate_run(ds.qrels, read_trec_run(next(runs.glob("*.run"))), [a.metric], per_query=True)
        per[name], means[name] = ev["per_query"][a.metric], ev[a.metric]
        print(f"{name}: {a.metric} {ev[a.metric]:.4f}", flush=True)
    control = next(iter(models))
    res = {"command": " ".join(sys.argv), "metric": a.metric, "control": control, "models": models,
           "means": means, "vs_control": {}}
    for name in list(models)[1:]:
        c = paired_bootstrap(per[control], per[name], metric=a.metric).to_dict()
        res["vs_control"][name] = c
        print(f"{name} vs {control}: {c['diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] "
              f"p = {c['p_value']:.3f}")
    (out / "pairs.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
