"""Training the distilled judge: fine-tune the cross-encoder on labelled pairs, then stack the grade head on
queries it never saw.

Every knob comes from one ``JudgeTrainConfig``, so ``strata run``, ``strata judge train`` and tests train
the same judge from the same settings; the data (pairs, catalog texts, their table versions) is passed
alongside it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from strata.judge.config import JudgeTrainConfig
from strata.judge.grade_head import MIN_HEAD_PAIRS, fit_grade_head, stack_split
from strata.judge.model import (HEAD_FEATURES, HEAD_FILE, KIND, META_FILE, TOKEN_STATS_FILE, DistilledJudge,
                                encoder_backend, head_features, mean_pool_model, weights_sha)
from strata.judge.pair_features import TokenStats

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    folder: Path
    judge_id: str
    train_pairs: int
    seen_pairs: int
    seconds: float
    meta: dict[str, Any]


def keep_layers(model: "Any", layers: int | None) -> "Any":
    """``model`` with only its first ``layers`` transformer layers (None: all). Cut after a full load rather
    than loaded with a smaller ``num_hidden_layers``: the same weights, without transformers reporting every
    dropped layer's weights as unexpected keys."""
    if not layers:
        return model
    base = model.base_model
    base.encoder.layer = base.encoder.layer[: int(layers)]
    base.config.num_hidden_layers = int(layers)  # the saved config.json then reloads the cut model as is
    return model


def train_distilled(pairs: "Any", out: str | Path, cfg: JudgeTrainConfig,
                    data_version: dict[str, Any] | None = None) -> TrainResult:
    """Fine-tune the base MiniLM with a 3-way head on ``pairs`` (query, product_text, grade) and save it.

    The cross-encoder alone (``cfg.stack_fraction`` and the encoder settings are ``train_judge``'s). Plain
    cross-entropy, linear warm-up/decay; ``cfg.max_seconds`` caps wall time (training stops after the batch
    that crosses it, and the judge.json records how many pairs were actually seen).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from strata.embed.encoder import model_id, resolve_model
    from strata.precision import autocast

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    base_dir = resolve_model(cfg.base)
    tok = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    # Keeping only the first N transformer layers trades a little accuracy for a judge that trains and scores
    # N/6 of the cost on CPU.
    if cfg.pooling == "mean":
        from transformers import AutoModel

        model = mean_pool_model(keep_layers(AutoModel.from_pretrained(base_dir, local_files_only=True), cfg.layers))
        head_params = list(model.head.parameters())
    else:
        model = keep_layers(AutoModelForSequenceClassification.from_pretrained(
            base_dir, num_labels=3, local_files_only=True,
            id2label={0: "irrelevant", 1: "partial", 2: "exact"},
            label2id={"irrelevant": 0, "partial": 1, "exact": 2},
        ), cfg.layers)
        head_params = list(model.classifier.parameters())
    queries = [str(q) for q in pairs["query"]]
    texts = [str(t) for t in pairs["product_text"]]
    grades = np.asarray(pairs["grade"], dtype=np.int64)
    n = len(queries)
    if n == 0:
        raise ValueError("no training pairs")
    idx = list(range(n))
    rng.shuffle(idx)
    if cfg.max_pairs:
        idx = idx[: cfg.max_pairs]
    epochs, batch_size = cfg.epochs, cfg.batch_size
    from strata.schedule import warmup_schedule

    total_steps = max(1, math.ceil(len(idx) * epochs / batch_size))
    head_ids = {id(p) for p in head_params}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    # The new head gets a larger step than the pre-trained body (it starts from random).
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr}, {"params": head_params, "lr": cfg.head_lr}],
                            weight_decay=0.01)
    sched = warmup_schedule(opt, total_steps, 0.06)
    model.train()
    t0 = time.perf_counter()
    seen, step, loss_ema = 0, 0, None
    stream = (idx * math.ceil(epochs))[: int(len(idx) * epochs)]
    # Length bucketing: within windows of 50 batches, batch rows of similar length (little padding), then
    # shuffle the batches; on CPU this roughly halves the cost per pair against random batches.
    batches: list[list[int]] = []
    win = batch_size * 50
    for w in range(0, len(stream), win):
        chunk = sorted(stream[w : w + win], key=lambda i: len(queries[i]) + len(texts[i]))
        part = [chunk[s : s + batch_size] for s in range(0, len(chunk), batch_size)]
        rng.shuffle(part)
        batches.extend(part)
    for b in batches:
        enc = tok([queries[i] for i in b], [texts[i] for i in b], padding=True, truncation="longest_first",
                  max_length=cfg.max_length, return_tensors="pt")
        target = torch.as_tensor(grades[b])
        with autocast(cfg.precision):
            logits = model(**enc) if cfg.pooling == "mean" else model(**enc).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        seen += len(b)
        step += 1
        loss_ema = loss.item() if loss_ema is None else 0.98 * loss_ema + 0.02 * loss.item()
        el = time.perf_counter() - t0
        if step % 50 == 0:
            log.info("train step %d/%d: %d pairs, loss %.4f, %.0f pairs/s", step, total_steps, seen, loss_ema,
                     seen / max(el, 1e-9))
        if cfg.max_seconds and el > cfg.max_seconds:
            log.info("train: time cap %.0fs reached after %d pairs", cfg.max_seconds, seen)
            break
    secs = time.perf_counter() - t0
    model.eval()
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if cfg.pooling == "mean":
        from safetensors.torch import save_file

        model.backbone.save_pretrained(str(out), safe_serialization=True)
        save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(out / HEAD_FILE))
        n_layers = int(model.backbone.config.num_hidden_layers)
    else:
        model.save_pretrained(str(out), safe_serialization=True)
        n_layers = int(model.config.num_hidden_layers)
    tok.save_pretrained(str(out))
    version = weights_sha(out)
    meta = {
        "kind": KIND,
        "name": cfg.name,
        "version": version,
        "judge_id": f"{cfg.name}@{version}",
        "base_model": model_id(cfg.base),
        "max_length": cfg.max_length,
        "layers": n_layers,
        "pooling": cfg.pooling,
        "precision": cfg.precision,
        "training": {
            "pairs_available": n, "pairs_used": len(idx), "pairs_seen": seen, "epochs": epochs,
            "batch_size": batch_size, "lr": cfg.lr, "head_lr": cfg.head_lr, "seed": cfg.seed,
            "seconds": round(secs, 1), "final_loss_ema": loss_ema, "data_version": data_version or {},
        },
        "metrics": {},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    log.info("train: saved %s (%d pairs seen in %.0fs)", out, seen, secs)
    return TrainResult(out, meta["judge_id"], len(idx), seen, secs, meta)


def train_judge(pairs: "Any", out: str | Path, catalog_texts: Iterable[str], cfg: JudgeTrainConfig,
                data_version: dict[str, Any] | None = None) -> TrainResult:
    """Train the distilled judge: the cross-encoder on (1 - ``cfg.stack_fraction``) of the training queries,
    then the grade head on the rest (cross-encoder probabilities + lexical features + bi-encoder cosine).

    ``stack_fraction=0`` trains the cross-encoder alone on every pair. ``catalog_texts`` (all product texts)
    give the token document frequencies the lexical features weight words by.
    """
    if cfg.stack_fraction == 0.0:
        return train_distilled(pairs, out, cfg, data_version)
    from strata.embed.encoder import load_encoder, model_id

    held = stack_split([str(q) for q in pairs["query_norm"]], cfg.stack_fraction)
    ce_pairs, head_pairs = pairs[~held], pairs[held]
    if len(ce_pairs) == 0 or len(head_pairs) < MIN_HEAD_PAIRS:
        log.warning("judge: the stack split leaves %d head pairs (< %d): training the cross-encoder alone on "
                    "all %d pairs, without a grade head", len(head_pairs), MIN_HEAD_PAIRS, len(pairs))
        return train_distilled(pairs, out, cfg, data_version)
    res = train_distilled(ce_pairs, out, cfg, data_version)
    t0 = time.perf_counter()
    judge = DistilledJudge(res.folder, threads=cfg.threads)
    hq = [str(q) for q in head_pairs["query"]]
    ht = [str(t) for t in head_pairs["product_text"]]
    ce = judge.cross_encoder_proba(hq, ht)
    stats = TokenStats.from_texts(catalog_texts)
    stats.save(res.folder / TOKEN_STATS_FILE)
    enc = load_encoder(cfg.encoder, max_seq_length=cfg.encoder_max_seq_length, backend=encoder_backend(cfg.precision))
    X = head_features(ce, hq, ht, stats, enc)
    head = fit_grade_head(X, head_pairs["grade"].to_numpy(), HEAD_FEATURES, seed=cfg.seed)
    head.save(res.folder)
    head_secs = time.perf_counter() - t0
    meta = json.loads((res.folder / META_FILE).read_text())
    meta["version"] = weights_sha(res.folder)
    meta["judge_id"] = f"{meta['name']}@{meta['version']}"
    meta["grade_head"] = {
        "encoder": cfg.encoder, "encoder_id": model_id(cfg.encoder),
        "encoder_max_seq_length": cfg.encoder_max_seq_length, "features": list(HEAD_FEATURES),
        "stack_fraction": cfg.stack_fraction, "cross_encoder_pairs": int(len(ce_pairs)),
        "head_pairs": int(len(head_pairs)), "catalog_texts": int(stats.n_docs), "seconds": round(head_secs, 1),
        **head.metrics,
    }
    (res.folder / META_FILE).write_text(json.dumps(meta, indent=2))
    log.info("judge: grade head on %d pairs in %.0fs -> %s", len(head_pairs), head_secs, meta["judge_id"])
    return TrainResult(res.folder, meta["judge_id"], len(pairs), res.seen_pairs, res.seconds + head_secs, meta)
