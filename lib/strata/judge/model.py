"""The ``distilled`` judge as a model: a small cross-encoder (packaged MiniLM) fine-tuned on human graded
labels, optionally refined by a grade head, loaded from a folder and scoring (query, product) pairs.

Mine and Refine fine-tunes a lightweight model on human annotations and uses it as the scalable judge; it
runs on CPU at a few hundred pairs/s, so it is the default judge for every stage. A trained judge is a
folder: ``model.safetensors`` + tokenizer + ``judge.json`` (judge id, version = weight hash, base model id,
the labels table version it was trained on, training metrics). Training lives in ``strata.judge.trainer``;
this module holds what both training and scoring must agree on (file names, pooling, the head's features).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from strata.judge.grade_head import GradeHead
from strata.judge.pair_features import FEATURE_NAMES, TokenStats, feature_matrix
from strata.judge.protocol import JudgeInput, JudgeOutput, PreparedInput, judge_scored

KIND = "distilled"
META_FILE = "judge.json"
HEAD_FILE = "head.safetensors"
TOKEN_STATS_FILE = "token_stats.json"
HEAD_FEATURES = ("ce_p_irrelevant", "ce_p_partial", "ce_p_exact", *FEATURE_NAMES, "biencoder_cosine")


def pair_text(p: PreparedInput) -> str:
    """The product side of the cross-encoder pair: title/text, then category and a few attributes."""
    parts = [p.product_text]
    if p.category:
        parts.append(f"category: {p.category}")
    if p.attributes:
        parts.append("; ".join(f"{k}: {v}" for k, v in list(p.attributes.items())[:8]))
    return " | ".join(parts)


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


def mean_pool_model(backbone: Any, n_labels: int = 3) -> Any:
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


def weights_sha(folder: Path) -> str:
    """Version = hash of everything that decides a score: weights (cross-encoder, head) and token stats."""
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob(TOKEN_STATS_FILE))
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def encoder_backend(precision: str) -> str:
    """The grade head's bi-encoder runs at the judge's precision (``auto`` and ``bf16`` map to embed backends)."""
    return {"fp32": "torch", "bf16": "torch-bf16", "auto": "auto"}[precision]


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
        self.precision = self.meta.get("precision", "fp32")  # scored as it was trained and calibrated
        if self.pooling == "mean":
            from safetensors.torch import load_file
            from transformers import AutoModel

            self.model = mean_pool_model(AutoModel.from_pretrained(str(self.folder), local_files_only=True))
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
                                    device=self.device, backend=encoder_backend(self.precision))

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
        from strata.precision import autocast

        with torch.inference_mode(), autocast(self.precision, torch.device(self.device).type):
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
