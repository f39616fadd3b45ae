"""The ``distilled`` judge: a small cross-encoder (packaged MiniLM) fine-tuned on human graded labels.

Mine and Refine fine-tunes a lightweight model on human annotations and uses it as the scalable judge;
here that is all-MiniLM-L6-v2 with a 3-way classification head over (query, product text) pairs. It runs
on CPU at a few hundred pairs/s, so it is the default judge for every stage. A trained judge is a folder:
``model.safetensors`` + tokenizer + ``judge.json`` (judge id, version = weight hash, base model id, the
labels table version it was trained on, training metrics).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from strata.judge.grade_head import GradeHead, fit_grade_head
from strata.judge.pair_features import FEATURE_NAMES, TokenStats, feature_matrix
from strata.judge.protocol import JudgeInput, JudgeOutput, PreparedInput, judge_scored

log = logging.getLogger(__name__)

KIND = "distilled"
META_FILE = "judge.json"


def pair_text(p: PreparedInput) -> str:
    """The product side of the cross-encoder pair: title/text, then category and a few attributes."""
    parts = [p.product_text]
    if p.category:
        parts.append(f"category: {p.category}")
    if p.attributes:
        parts.append("; ".join(f"{k}: {v}" for k, v in list(p.attributes.items())[:8]))
    return " | ".join(parts)


HEAD_FILE = "head.safetensors"
HEAD_FEATURES = ("ce_p_irrelevant", "ce_p_partial", "ce_p_exact", *FEATURE_NAMES, "biencoder_cosine")


def head_features(ce_probs: np.ndarray, queries: list[str], texts: list[str], stats: TokenStats,
                  encoder: Any, batch_size: int = 128) -> np.ndarray:
    """The grade head's input row per pair (``HEAD_FEATURES`` order)."""
    from strata.embed.encoder import encode

    # Encode each distinct string once: candidate lists repeat the query, and catalogs repeat titles.
    uq = list(dict.fromkeys(queries))
    ut = list(dict.fromkeys(texts))
    eq = encode(encoder, uq, batch_size=batch_size)
    et = encode(encoder, ut, batch_size=batch_size)
    qi = {q: i for i, q in enumerate(uq)}
    ti = {t: i for i, t in enumerate(ut)}
    cos = np.einsum("ij,ij->i", eq[[qi[q] for q in queries]], et[[ti[t] for t in texts]])
    lex = feature_matrix(queries, texts, stats)
    return np.hstack([np.asarray(ce_probs, dtype=np.float32), lex, cos[:, None].astype(np.float32)])


def _mean_pool_model(backbone: Any, n_labels: int = 3) -> Any:
    """Backbone + mean pooling over real tokens + a linear head: the pooling the MiniLM weights were trained
    with. (A CLS/pooler head on this sentence-embedding checkpoint barely moves in a CPU-sized budget.)"""
    import torch

    class MeanPoolClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(backbone.config.hidden_size, n_labels)

        def forward(self, input_ids, attention_mask, token_type_ids=None):  # noqa: ANN001
            h = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.head(self.dropout(pooled))

    return MeanPoolClassifier()


TOKEN_STATS_FILE = "token_stats.json"


def _weights_sha(folder: Path) -> str:
    """Version = hash of everything that decides a score: weights (cross-encoder, head) and token stats."""
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob(TOKEN_STATS_FILE))
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]


class DistilledJudge:
    """Load a trained judge folder; ``judge(batch)`` scores pairs (``Judge`` protocol)."""

    def __init__(self, folder: str | Path, device: str = "cpu", batch_size: int = 64,
                 max_length: int | None = None, threads: int | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.folder = Path(folder).expanduser().resolve()
        meta_path = self.folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.folder}: no {META_FILE}; not a trained judge (strata judge train)")
        self.meta = json.loads(meta_path.read_text())
        self.name = self.meta["name"]
        self.version = self.meta["version"]
        self.judge_id = f"{self.name}@{self.version}"
        self.max_length = int(max_length or self.meta.get("max_length", 64))
        self.batch_size = batch_size
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        self.pooling = self.meta.get("pooling", "cls")
        if self.pooling == "mean":
            from safetensors.torch import load_file
            from transformers import AutoModel

            self.model = _mean_pool_model(AutoModel.from_pretrained(str(self.folder), local_files_only=True))
            self.model.head.load_state_dict(load_file(str(self.folder / HEAD_FILE)))
            self.model.to(device).eval()
        else:
            self.model = AutoModelForSequenceClassification.from_pretrained(
                str(self.folder), local_files_only=True).to(device).eval()
        self.grade_head = None
        if GradeHead.exists(self.folder) and self.meta.get("grade_head"):
            self._load_grade_head()

    def _load_grade_head(self) -> None:
        from strata.embed.encoder import load_encoder, model_id

        spec = self.meta["grade_head"]
        found = model_id(spec["encoder"])
        if found != spec["encoder_id"]:
            raise ValueError(f"{self.folder}: the grade head was fitted with encoder {spec['encoder_id']}, "
                             f"but {spec['encoder']!r} is now {found}; retrain the judge")
        self.grade_head = GradeHead.load(self.folder)
        self.token_stats = TokenStats.load(self.folder / TOKEN_STATS_FILE)
        self.encoder = load_encoder(spec["encoder"], max_seq_length=spec.get("encoder_max_seq_length"),
                                    device=self.device)

    def cross_encoder_proba(self, queries: Sequence[str], products: Sequence[str]) -> np.ndarray:
        """Grade probabilities of the fine-tuned cross-encoder alone (no grade head)."""
        return self._ce_proba(queries, products)

    def predict_proba(self, queries: Sequence[str], products: Sequence[str]) -> np.ndarray:
        """Grade probabilities: the cross-encoder's, refined by the grade head when the judge has one."""
        ce = self._ce_proba(queries, products)
        if self.grade_head is None or len(ce) == 0:
            return ce
        X = head_features(ce, list(queries), list(products), self.token_stats, self.encoder)
        return self.grade_head.predict_proba(X)

    def _ce_proba(self, queries: Sequence[str], products: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        # Sort by length so each batch pads little; results go back in input order.
        order = np.argsort([len(q) + len(p) for q, p in zip(queries, products)], kind="stable")
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                enc = self.tokenizer([queries[i] for i in idx], [products[i] for i in idx], padding=True,
                                     truncation="longest_first", max_length=self.max_length,
                                     return_tensors="pt").to(self.device)
                out_ = self.model(**enc)
                logits = (out_ if self.pooling == "mean" else out_.logits).float()
                out.append(torch.softmax(logits, dim=-1).cpu().numpy())
        probs = np.concatenate(out) if out else np.zeros((0, 3))
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return probs[back]

    def _score(self, rows: list[PreparedInput]) -> np.ndarray:
        return self.predict_proba([r.query for r in rows], [pair_text(r) for r in rows])

    def judge(self, batch: Sequence[JudgeInput]) -> list[JudgeOutput]:
        return judge_scored(self, batch, self._score)


# -- training ----------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    folder: Path
    judge_id: str
    train_pairs: int
    seen_pairs: int
    seconds: float
    meta: dict[str, Any]


# labels' source -> the catalog (products.source) its product ids live in
_CATALOG = {"bestbuy-small": "bestbuy"}
_LABEL_COLUMNS = ["source", "query", "query_norm", "product_id", "grade", "split"]
_PRODUCT_COLUMNS = ["product_id", "source", "title", "description"]


def _scan_frame(lakehouse: Any, name: str, columns: list[str], filter: Any = None,
                keep: Callable[[Any], Any] | None = None) -> "Any":
    """``columns`` of the rows of ``name`` matching ``filter`` (and the per-batch mask ``keep``) as one pandas
    frame, streamed from the table (only the matching rows are held; an empty frame of the table's schema when
    none match)."""
    import pyarrow as pa

    from strata.embed.scan import scan_batches
    from strata.tables import spec

    batches = [b.filter(keep(b)) if keep else b for b in scan_batches(lakehouse, name, columns, filter=filter)]
    table = pa.Table.from_batches(batches) if batches else spec(name).schema.empty_table().select(columns)
    return table.to_pandas()


def _key_filter(keys: Any) -> Any:
    """A pyarrow filter for products whose (source, product_id) is one of ``keys`` (a frame: catalog,
    product_id), as a push-down pre-filter (source in catalogs, product_id in ids) and an exact per-batch
    mask function."""
    import pyarrow as pa
    import pyarrow.compute as pc

    by_cat: dict[Any, pa.Array] = {}
    for cat, ids in keys.groupby("catalog", dropna=False, sort=False)["product_id"]:
        by_cat[None if cat is None or (isinstance(cat, float) and math.isnan(cat)) else cat] = pa.array(
            ids.unique(), type=pa.string(), from_pandas=True)
    all_ids = pa.array(keys["product_id"].unique(), type=pa.string(), from_pandas=True)
    cats = pa.array(list(by_cat), type=pa.string())
    pushdown = pc.field("source").isin(cats) & pc.field("product_id").isin(all_ids)

    def mask(batch: pa.RecordBatch) -> pa.Array:
        src, pid = batch.column("source"), batch.column("product_id")
        m = None
        for cat, ids in by_cat.items():
            same = pc.is_null(src) if cat is None else pc.equal(src, cat)
            hit = pc.and_(pc.fill_null(same, False), pc.is_in(pid, value_set=ids))
            m = hit if m is None else pc.or_(m, hit)
        return m

    return pushdown, mask


def query_draw(query_norm: Any) -> "Any":
    """A stable draw in [0, 1) per query (pandas' fixed-key hash): the same query gets the same draw in every
    run, so a sample keeps or drops a query with all its labels."""
    import numpy as np
    import pandas as pd

    values = np.asarray(pd.Series(query_norm, dtype=object).fillna(""), dtype=object)
    return pd.util.hash_array(values).astype(np.float64) / 2.0**64


def load_pairs(lakehouse: Any, source: str | None = None, sample: int | None = None) -> "Any":
    """labels joined with products (title + description) as a pandas frame: query, product_text, grade, split.

    Streams both tables: labels with only the columns kept (and ``source`` pushed down), then products
    with only the rows whose (source, product_id) a label references; the catalog is never held whole.
    ``sample``: keep about that many labels, whole queries drawn by a stable hash (``query_draw``), so the
    frame stays bounded however many labels the table holds (100M labels with text would be tens of GB).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from strata.embed.scan import scan_batches
    from strata.tables import spec

    flt = (pc.field("source") == source) if source else None
    keep = None
    if sample is not None:
        if sample < 1:
            raise ValueError(f"sample must be >= 1 labels (got {sample})")
        total = sum(b.num_rows for b in scan_batches(lakehouse, "labels", ["query_norm"], filter=flt))
        rate = sample / max(total, 1)
        if rate < 1:
            keep = lambda b: pa.array(query_draw(b.column("query_norm").to_pylist()) < rate)  # noqa: E731
        log.info("load_pairs: sampling %.4f of %d labels (about %d) by query", min(rate, 1.0), total, sample)
    labels = _scan_frame(lakehouse, "labels", _LABEL_COLUMNS, filter=flt, keep=keep)
    labels = labels.assign(catalog=labels["source"].map(lambda s: _CATALOG.get(s, s)))
    kept: list[pa.RecordBatch] = []
    if len(labels):
        pushdown, mask = _key_filter(labels[["catalog", "product_id"]])
        for batch in scan_batches(lakehouse, "products", _PRODUCT_COLUMNS, filter=pushdown):
            batch = batch.filter(mask(batch))
            if batch.num_rows:
                kept.append(batch)
    products = (pa.Table.from_batches(kept) if kept
                else spec("products").schema.empty_table().select(_PRODUCT_COLUMNS)).to_pandas()
    # object dtype even with no rows (as when the whole catalog was read)
    products = products.assign(product_text=pd.Series(_product_texts(products), index=products.index, dtype=object))
    df = labels.merge(products[["product_id", "source", "product_text"]],
                      left_on=["catalog", "product_id"], right_on=["source", "product_id"],
                      how="inner", suffixes=("", "_p"))
    return df[["source", "query", "query_norm", "product_id", "product_text", "grade", "split"]].reset_index(drop=True)


class CatalogTexts:
    """Every product's judge text (title + description), streamed from ``products`` each time it is iterated
    (the catalog is never held in memory: ``TokenStats.from_texts`` only counts tokens per text)."""

    def __init__(self, lakehouse: Any, source: str | None = None) -> None:
        self.lakehouse, self.source = lakehouse, source

    def __iter__(self) -> Iterator[str]:
        import pyarrow.compute as pc

        from strata.embed.scan import scan_batches

        flt = (pc.field("source") == self.source) if self.source else None
        for batch in scan_batches(self.lakehouse, "products", ["title", "description"], filter=flt):
            yield from _product_texts({"title": batch.column("title").to_pylist(),
                                       "description": batch.column("description").to_pylist()})


def catalog_texts(lakehouse: Any, source: str | None = None) -> Iterable[str]:
    """Every product's judge text (title + description), for the token statistics of the grade head: a lazy,
    re-iterable stream over ``products`` (same texts, same order as reading the table whole)."""
    return CatalogTexts(lakehouse, source)


def _product_texts(products: Any) -> list[str]:
    return [" ".join(x for x in (t or "", d or "") if x).strip()
            for t, d in zip(products["title"], products["description"])]


def train_distilled(
    pairs: "Any",
    out: str | Path,
    name: str = "distilled-minilm",
    base: str = "baseline",
    epochs: float = 1.0,
    batch_size: int = 32,
    lr: float = 5e-5,
    max_length: int = 64,
    max_seconds: float | None = None,
    max_pairs: int | None = None,
    seed: int = 13,
    threads: int | None = None,
    data_version: dict[str, Any] | None = None,
    layers: int | None = None,
    pooling: str = "mean",
    head_lr: float = 2e-3,
) -> TrainResult:
    """Fine-tune the base MiniLM with a 3-way head on ``pairs`` (query, product_text, grade) and save it.

    Plain cross-entropy, linear warm-up/decay; ``max_seconds`` caps wall time (training stops after the
    batch that crosses it, and the judge.json records how many pairs were actually seen).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from strata.embed.encoder import model_id, resolve_model

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    base_dir = resolve_model(base)
    tok = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling must be mean or cls (got {pooling!r})")
    extra = {"num_hidden_layers": int(layers)} if layers else {}
    if pooling == "mean":
        from transformers import AutoModel

        model = _mean_pool_model(AutoModel.from_pretrained(base_dir, local_files_only=True, **extra))
        head_params = list(model.head.parameters())
    else:
      model = AutoModelForSequenceClassification.from_pretrained(
        base_dir, num_labels=3, local_files_only=True,
        id2label={0: "irrelevant", 1: "partial", 2: "exact"},
        label2id={"irrelevant": 0, "partial": 1, "exact": 2},
        # Keeping only the first N transformer layers trades a little accuracy for a judge that trains and
        # scores N/6 of the cost on CPU.
        **extra,
      )
      head_params = list(model.classifier.parameters())
    queries = [str(q) for q in pairs["query"]]
    texts = [str(t) for t in pairs["product_text"]]
    grades = np.asarray(pairs["grade"], dtype=np.int64)
    n = len(queries)
    if n == 0:
        raise ValueError("no training pairs")
    idx = list(range(n))
    rng.shuffle(idx)
    if max_pairs:
        idx = idx[:max_pairs]
    total_steps = max(1, math.ceil(len(idx) * epochs / batch_size))
    head_ids = {id(p) for p in head_params}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    # The new head gets a larger step than the pre-trained body (it starts from random).
    opt = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head_params, "lr": head_lr}],
                            weight_decay=0.01)
    warm = max(1, int(0.06 * total_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total_steps - s) / max(1, total_steps - warm))))
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
                  max_length=max_length, return_tensors="pt")
        target = torch.as_tensor(grades[b])
        if pooling == "mean":
            loss = torch.nn.functional.cross_entropy(model(**enc), target)
        else:
            loss = model(**enc, labels=target).loss
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
        if max_seconds and el > max_seconds:
            log.info("train: time cap %.0fs reached after %d pairs", max_seconds, seen)
            break
    secs = time.perf_counter() - t0
    model.eval()
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if pooling == "mean":
        from safetensors.torch import save_file

        model.backbone.save_pretrained(str(out), safe_serialization=True)
        save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(out / HEAD_FILE))
        n_layers = int(model.backbone.config.num_hidden_layers)
    else:
        model.save_pretrained(str(out), safe_serialization=True)
        n_layers = int(model.config.num_hidden_layers)
    tok.save_pretrained(str(out))
    version = _weights_sha(out)
    meta = {
        "kind": KIND,
        "name": name,
        "version": version,
        "judge_id": f"{name}@{version}",
        "base_model": model_id(base),
        "max_length": max_length,
        "layers": n_layers,
        "pooling": pooling,
        "training": {
            "pairs_available": n, "pairs_used": len(idx), "pairs_seen": seen, "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "head_lr": head_lr, "seed": seed, "seconds": round(secs, 1),
            "final_loss_ema": loss_ema, "data_version": data_version or {},
        },
        "metrics": {},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    log.info("train: saved %s (%d pairs seen in %.0fs)", out, seen, secs)
    return TrainResult(out, meta["judge_id"], len(idx), seen, secs, meta)


MIN_HEAD_PAIRS = 50  # fewer held-out pairs than this cannot fit a grade head worth having


def stack_split(query_norms: Sequence[str], fraction: float, salt: str = "judge-stack-v1") -> np.ndarray:
    """True for pairs whose query falls in the grade head's share (a stable hash of the normalised query, so
    the cross-encoder never sees a query the head is fitted on)."""
    from strata.text import query_bucket

    return np.array([query_bucket(q, salt) < fraction for q in query_norms], dtype=bool)


def train_judge(
    pairs: "Any",
    out: str | Path,
    catalog_texts: Iterable[str],
    stack_fraction: float = 0.25,
    encoder: str = "baseline",
    encoder_max_seq_length: int | None = 48,
    seed: int = 13,
    **ce_kwargs: Any,
) -> TrainResult:
    """Train the distilled judge: the cross-encoder on (1 - ``stack_fraction``) of the training queries, then
    the grade head on the rest (cross-encoder probabilities + lexical features + bi-encoder cosine).

    ``stack_fraction=0`` trains the cross-encoder alone on every pair. ``catalog_texts`` (all product texts)
    give the token document frequencies the lexical features weight words by.
    """
    if not 0.0 <= stack_fraction < 1.0:
        raise ValueError(f"stack_fraction must be in [0, 1) (got {stack_fraction})")
    if stack_fraction == 0.0:
        return train_distilled(pairs, out, seed=seed, **ce_kwargs)
    from strata.embed.encoder import load_encoder, model_id

    held = stack_split([str(q) for q in pairs["query_norm"]], stack_fraction)
    ce_pairs, head_pairs = pairs[~held], pairs[held]
    if len(ce_pairs) == 0 or len(head_pairs) < MIN_HEAD_PAIRS:
        log.warning("judge: the stack split leaves %d head pairs (< %d): training the cross-encoder alone on "
                    "all %d pairs, without a grade head", len(head_pairs), MIN_HEAD_PAIRS, len(pairs))
        return train_distilled(pairs, out, seed=seed, **ce_kwargs)
    res = train_distilled(ce_pairs, out, seed=seed, **ce_kwargs)
    t0 = time.perf_counter()
    judge = DistilledJudge(res.folder, threads=ce_kwargs.get("threads"))
    hq = [str(q) for q in head_pairs["query"]]
    ht = [str(t) for t in head_pairs["product_text"]]
    ce = judge.cross_encoder_proba(hq, ht)
    stats = TokenStats.from_texts(catalog_texts)
    stats.save(res.folder / TOKEN_STATS_FILE)
    enc = load_encoder(encoder, max_seq_length=encoder_max_seq_length)
    X = head_features(ce, hq, ht, stats, enc)
    head = fit_grade_head(X, head_pairs["grade"].to_numpy(), HEAD_FEATURES, seed=seed)
    head.save(res.folder)
    head_secs = time.perf_counter() - t0
    meta = json.loads((res.folder / META_FILE).read_text())
    meta["version"] = _weights_sha(res.folder)
    meta["judge_id"] = f"{meta['name']}@{meta['version']}"
    meta["grade_head"] = {
        "encoder": encoder, "encoder_id": model_id(encoder), "encoder_max_seq_length": encoder_max_seq_length,
        "features": list(HEAD_FEATURES), "stack_fraction": stack_fraction, "cross_encoder_pairs": int(len(ce_pairs)),
        "head_pairs": int(len(head_pairs)), "catalog_texts": int(stats.n_docs), "seconds": round(head_secs, 1),
        **head.metrics,
    }
    (res.folder / META_FILE).write_text(json.dumps(meta, indent=2))
    log.info("judge: grade head on %d pairs in %.0fs -> %s", len(head_pairs), head_secs, meta["judge_id"])
    return TrainResult(res.folder, meta["judge_id"], len(pairs), res.seen_pairs, res.seconds + head_secs, meta)
