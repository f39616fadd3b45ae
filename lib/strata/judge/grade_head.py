"""The distilled judge's grade head: a small MLP over the cross-encoder's grade probabilities, the bi-encoder
cosine and the lexical pair features, fitted on human labels the cross-encoder never trained on.

Why a second model: within a CPU budget the fine-tuned MiniLM cross-encoder alone under-uses the evidence
that the lexical features and the off-the-shelf embedding cosine carry. Stacking them on held-out pairs
(``stack_split``: whole queries the cross-encoder never trained on, so its probabilities are as honest as at
scoring time) recovers it. Saved as safetensors + JSON (standardisation, feature names): no pickle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

HEAD_WEIGHTS = "grade_head.safetensors"
HEAD_META = "grade_head.json"
MIN_HEAD_PAIRS = 50  # fewer held-out pairs than this cannot fit a grade head worth having


def stack_split(query_norms: Sequence[str], fraction: float, salt: str = "judge-stack-v1") -> np.ndarray:
    """True for pairs whose query falls in the grade head's share (a stable hash of the normalised query, so
    the cross-encoder never sees a query the head is fitted on)."""
    from strata.text import query_bucket

    return np.array([query_bucket(q, salt) < fraction for q in query_norms], dtype=bool)


def _net(n_in: int, hidden: int):
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.GELU(), torch.nn.Dropout(0.1),
        torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 3),
    )


@dataclass
class GradeHead:
    """Standardise -> MLP -> softmax over grades 0..2."""

    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    net: object  # torch.nn.Sequential
    hidden: int
    metrics: dict

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        import torch

        if X.shape[1] != len(self.feature_names):
            raise ValueError(f"grade head expects {len(self.feature_names)} features, got {X.shape[1]}")
        Z = torch.as_tensor((np.asarray(X, dtype=np.float32) - self.mean) / self.scale, dtype=torch.float32)
        with torch.inference_mode():
            return torch.softmax(self.net(Z), dim=-1).double().numpy()  # type: ignore[operator]

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()},  # type: ignore[attr-defined]
                  str(folder / HEAD_WEIGHTS))
        (folder / HEAD_META).write_text(json.dumps({
            "feature_names": list(self.feature_names), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
            "hidden": self.hidden, "metrics": self.metrics}, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> "GradeHead":
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / HEAD_META).read_text())
        net = _net(len(meta["feature_names"]), int(meta["hidden"]))
        net.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)))
        net.eval()
        return cls(tuple(meta["feature_names"]), np.asarray(meta["mean"], dtype=np.float32),
                   np.asarray(meta["scale"], dtype=np.float32), net, int(meta["hidden"]), meta.get("metrics", {}))

    @staticmethod
    def exists(folder: str | Path) -> bool:
        return (Path(folder) / HEAD_WEIGHTS).is_file() and (Path(folder) / HEAD_META).is_file()


def fit_grade_head(X: np.ndarray, y: Sequence[int], feature_names: Sequence[str], seed: int = 13,
                   hidden: int = 64, epochs: int = 60, lr: float = 2e-3, batch_size: int = 256,
                   holdout: float = 0.1) -> GradeHead:
    """Cross-entropy on ``(X, y)``; the epoch with the lowest loss on a random ``holdout`` share is kept."""
    import torch

    X = np.asarray(X, dtype=np.float32)
    y_arr = np.asarray(y, dtype=np.int64)
    if len(X) != len(y_arr) or len(X) < 10:
        raise ValueError(f"grade head needs >= 10 labelled rows with features (got {len(X)} rows, {len(y_arr)} labels)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mean = X.mean(0)
    scale = X.std(0) + 1e-6
    Z = torch.as_tensor((X - mean) / scale)
    Y = torch.as_tensor(y_arr)
    order = rng.permutation(len(X))
    n_val = max(1, int(len(X) * holdout))
    val, trn = order[:n_val], order[n_val:]
    net = _net(X.shape[1], hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-3)
    best_loss, best_state, best_epoch = float("inf"), None, -1
    for epoch in range(epochs):
        net.train()
        perm = torch.as_tensor(rng.permutation(trn))
        for s in range(0, len(perm), batch_size):
            b = perm[s : s + batch_size]
            loss = torch.nn.functional.cross_entropy(net(Z[b]), Y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            v = float(torch.nn.functional.cross_entropy(net(Z[val]), Y[val]))
        if v < best_loss:
            best_loss, best_epoch = v, epoch
            best_state = {k: t.clone() for k, t in net.state_dict().items()}
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        acc = float((net(Z[val]).argmax(-1) == Y[val]).float().mean())
    log.info("grade head: %d rows, best epoch %d, holdout loss %.4f, accuracy %.4f", len(X), best_epoch,
             best_loss, acc)
    return GradeHead(tuple(feature_names), mean, scale, net, hidden,
                     {"rows": int(len(X)), "best_epoch": best_epoch, "holdout_loss": best_loss,
                      "holdout_accuracy": acc})
