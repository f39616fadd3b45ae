"""Uniform weight averaging of sentence-transformers models fine-tuned from one start ("model soup").

Why: fine-tunes that share an initialisation usually stay in one loss basin, so the element-wise mean of their
weights is itself a good model, sometimes better than each ingredient. The runs can go in parallel (a cluster
gives N of them for the wall time of one), and the soup costs no training. The check that matters is that the
ingredients really are the same architecture: a mismatch in any tensor's name, shape or dtype is an error, not
a silently broken model.

Weights other than uniform make it a weighted merge. They must sum to 1; a negative weight on the start and a
weight above 1 on a fine-tune extrapolates along the fine-tune's direction (start + lam x (fine-tune - start)
is weights 1-lam, lam), a cheap probe of whether more of that training would help.
"""

from __future__ import annotations

from pathlib import Path


def average_models(paths: list[str | Path], out: str | Path, weights: list[float] | None = None) -> Path:
    """Average the weights of ``paths`` (>= 2 sentence-transformers dirs), uniformly or with ``weights`` (one
    per path, summing to 1), and save the result under ``out`` (tokenizer, pooling and config from the first
    ingredient). Integer buffers (e.g. position ids) must agree and are copied, not averaged."""
    import math

    import torch
    from sentence_transformers import SentenceTransformer

    if len(paths) < 2:
        raise ValueError(f"a soup needs at least 2 models, got {len(paths)}")
    if weights is None:
        weights = [1.0 / len(paths)] * len(paths)
    if len(weights) != len(paths):
        raise ValueError(f"{len(weights)} weights for {len(paths)} models: give one per model")
    if not all(math.isfinite(w) for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"weights must be finite and sum to 1 (got {weights}, sum {sum(weights):g}): other sums "
                         "rescale every weight of the model")
    for p in paths:
        if not (Path(p) / "modules.json").is_file():
            raise ValueError(f"{p}: not a sentence-transformers model directory (no modules.json)")
    # One ingredient in memory at a time besides the running sum: N models cost the memory of two.
    soup = SentenceTransformer(str(paths[0]), device="cpu", local_files_only=True)
    base = {k: v.detach().clone() for k, v in soup.state_dict().items()}
    total = {k: weights[0] * v.double() for k, v in base.items() if v.is_floating_point()}
    for p, w in zip(paths[1:], weights[1:]):
        st = SentenceTransformer(str(p), device="cpu", local_files_only=True).state_dict()
        if st.keys() != base.keys():
            diff = sorted(set(st) ^ set(base))[:5]
            raise ValueError(f"{p}: different parameters from {paths[0]} (e.g. {diff})")
        for k, v in st.items():
            if v.shape != base[k].shape or v.dtype != base[k].dtype:
                raise ValueError(f"{p}: {k} is {tuple(v.shape)} {v.dtype}, {paths[0]} has "
                                 f"{tuple(base[k].shape)} {base[k].dtype}")
            if k in total:
                total[k] += w * v.double()
            elif not torch.equal(v, base[k]):
                raise ValueError(f"non-float tensor {k} differs between ingredients: cannot average it")
    avg = {k: total[k].to(v.dtype) if k in total else v for k, v in base.items()}
    soup.load_state_dict(avg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    soup.save(str(out))
    return out
