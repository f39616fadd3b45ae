"""Stage 1 loss/sampling variants at a fixed step budget: which choices move Home Depot dev quality.

A plain torch loop (no Ray: the variants differ only in loss and sampling, so the Ray Train wrapper is left
out to run two variants side by side on 2 cores) over the library's own pieces: ``build_groups`` +
``read_groups`` for data (Spark-built query groups with the augmentation), ``sample_batch`` for rows, ``GradedSupConLoss`` for the loss.
Same model, seq length, batch (32 queries x 4 rows), lr schedule (10% warm-up, linear decay) and seed for
every variant; quality = full-corpus retrieval on the BEIR dev export (``evaluate_beir``).

    .venv/bin/python bench/bench_stage1_variants.py --lakehouse LH --dataset HD_DEV_BEIR --partials graded \
        --steps 200 --out /tmp/s1v/graded          # prints and writes OUT/result.json

Results of the session-4 runs are in BENCHMARKS.md (Training, "Stage 1 variants").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lakehouse", required=True)
    ap.add_argument("--dataset", required=True, help="BEIR folder of the dev split (strata export-beir)")
    ap.add_argument("--catalog", default="homedepot")
    ap.add_argument("--partials", default="graded", choices=("graded", "negative", "ignore"))
    ap.add_argument("--symmetric", type=float, default=0.0)
    ap.add_argument("--spelling", type=float, default=0.1, help="share of queries given a misspelled copy")
    ap.add_argument("--synthetic", type=int, default=0, help="template synthetic queries")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--negatives", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=None, help="embedding cache for the evaluation")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from strata.config import EmbedConfig
    from strata.embed.encoder import resolve_model
    from strata.evaluate.beir_eval import evaluate_beir
    from strata.sources.beir import read_beir
    from strata.tables import Lakehouse
    from strata.config import EngineConfig
    from strata.engines import Engines
    from strata.train.data import sample_batch
    from strata.train.groups import AugmentConfig, build_groups, read_groups
    from strata.train.losses import GradedSupConLoss

    torch.set_num_threads(a.threads)
    torch.manual_seed(13)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with Engines(EngineConfig()) as eng:
        g = build_groups(eng.spark, Lakehouse(a.lakehouse), out / "groups", [a.catalog],
                         AugmentConfig(a.spelling, a.synthetic, "template", 13))
    aug = g.augmentation()
    data = read_groups(g, stage=1).sample(frac=1.0, random_state=13).reset_index(drop=True)
    model = SentenceTransformer(resolve_model("baseline"), device="cpu", local_files_only=True)
    model.max_seq_length = a.seq
    loss_fn = GradedSupConLoss(a.temperature, a.partials, a.symmetric)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    warm = max(1, int(0.1 * a.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (a.steps - s) / max(1, a.steps - warm))))

    def embed(texts: list[str]) -> torch.Tensor:
        return torch.nn.functional.normalize(model(model.tokenize(texts))["sentence_embedding"], dim=-1)

    model.train()
    t0, pos, epoch, ema = time.perf_counter(), 0, 0, None
    for step in range(a.steps):
        if pos + a.batch > len(data):
            epoch += 1
            data = data.sample(frac=1.0, random_state=13 + epoch).reset_index(drop=True)
            pos = 0
        b = data.iloc[pos:pos + a.batch]
        pos += a.batch
        batch = {k: list(b[k]) for k in ("query", "texts", "pids", "grades")}
        q, t, o, g, p = sample_batch(batch, 1, random.Random(f"13-{step}"), a.negatives, partials=a.partials)
        loss = loss_fn(embed(q), embed(t), torch.tensor(o), torch.tensor(g), torch.tensor(p))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = float(loss.detach()) if ema is None else 0.95 * ema + 0.05 * float(loss.detach())
        if (step + 1) % 20 == 0:
            print(f"step {step + 1} loss {ema:.4f} {(time.perf_counter() - t0) / (step + 1):.2f} s/step", flush=True)
    secs = time.perf_counter() - t0
    model.save(str(out / "model"))
    ds = read_beir(a.dataset, split="dev")
    ev = evaluate_beir(ds, [str(out / "model")], k=100,
                       embed_cfg=EmbedConfig(max_seq_length=a.seq, batch_size=128, cache_dir=a.cache_dir))
    quality = {m: v for m, v in next(iter(ev["retrievers"].values())).items() if m in ("ndcg@10", "recall@100", "mrr@10")}
    res = {"args": vars(a), "groups": int(len(data)), "augmentation": aug, "train_seconds": round(secs, 1),
           "final_loss": ema, "quality": quality, "command": " ".join(sys.argv)}
    (out / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
