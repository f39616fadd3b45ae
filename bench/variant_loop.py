"""The plain torch training loop and evaluation shared by the loss/sampling variant benchmarks
(``bench_stage1_variants.py``, ``bench_stage2_variants.py``).

No Ray: variants differ only in loss and sampling, so the Ray Train wrapper is left out to run two variants
side by side on 2 cores. Same lr schedule as the library's loop (10% warm-up, linear decay), AdamW with weight
decay 0.01, gradient clipping at 1.0, and a step-seeded sampler, so two variants see the same query order.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any, Callable


def arguments(steps: int, lr: float) -> argparse.ArgumentParser:
    """The options every variant script shares (its own are added by the script)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True, help="BEIR folder of the dev split (strata export-beir)")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--batch", type=int, default=32, help="queries per step")
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=13, help="data order, row draw and torch seed (13 = every earlier run)")
    ap.add_argument("--out", required=True)
    return ap


def train(model: Any, data: Any, steps: int, batch: int, lr: float, sample: Callable, loss_fn: Callable,
          seed: int = 13) -> tuple[float, float | None]:
    """``steps`` optimizer steps over ``data`` (pandas groups, reshuffled each epoch); returns (seconds, loss
    EMA). ``sample(batch_dict, rng)`` -> (queries, texts, owner, grade, pid, *extra); ``loss_fn(q, p, owner,
    grade, pid, *extra)`` -> scalar (every column of ``data`` reaches ``sample``; ``extra`` lists become
    tensors)."""
    import torch

    from strata.schedule import warmup_schedule

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = warmup_schedule(opt, steps, 0.1)

    def embed(texts: list[str]) -> torch.Tensor:
        return torch.nn.functional.normalize(model(model.preprocess(texts))["sentence_embedding"], dim=-1)

    model.train()
    t0, pos, epoch, ema = time.perf_counter(), 0, 0, None
    data = data.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    for step in range(steps):
        if pos + batch > len(data):
            epoch += 1
            data = data.sample(frac=1.0, random_state=seed + epoch).reset_index(drop=True)
            pos = 0
        b = data.iloc[pos:pos + batch]
        pos += batch
        q, t, *rest = sample({k: list(b[k]) for k in b.columns}, random.Random(f"{seed}-{step}"))
        loss = loss_fn(embed(q), embed(t), *(torch.tensor(x) for x in rest))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = float(loss.detach()) if ema is None else 0.95 * ema + 0.05 * float(loss.detach())
        if (step + 1) % 20 == 0:
            print(f"step {step + 1} loss {ema:.4f} {(time.perf_counter() - t0) / (step + 1):.2f} s/step", flush=True)
    return time.perf_counter() - t0, ema


def evaluate(model_dir: str, dataset: str, seq: int, cache_dir: str | None = None) -> dict[str, float]:
    """nDCG@10 / recall@100 / MRR@10 of full-corpus retrieval on the BEIR dev export."""
    from strata.embed.config import EmbedConfig
    from strata.evaluate.beir_eval import evaluate_beir
    from strata.sources.beir import read_beir

    ev = evaluate_beir(read_beir(dataset, split="dev"), [model_dir], k=100,
                       embed_cfg=EmbedConfig(max_seq_length=seq, batch_size=128, cache_dir=cache_dir))
    return {m: v for m, v in next(iter(ev["retrievers"].values())).items()
            if m in ("ndcg@10", "recall@100", "mrr@10")}
