"""The two training losses, as ``nn.Module``s over a batch of query and product embeddings.

Both take ``q`` (B, d) query embeddings, ``p`` (N, d) product embeddings (L2-normalised), ``owner`` (N,) the
index of the batch query each product row belongs to, ``grade`` (N,) its grade (2 exact, 1 partial,
0 irrelevant) and optionally ``pid`` (N,) integer product ids, used so a product that appears under another
query of the batch is never that query's in-batch negative when it is one of its own rows.

**Graded supervised contrastive loss (Stage 1).** For query i let g*(i) be the best grade among its rows
(queries with g* = 0 contribute nothing), P(i) its rows of grade g*, and N(i) every other product row in the
batch: its own lower-graded rows and all rows of other queries (in-batch negatives). With s = q·p / τ,

    ℓ(i, p) = -log( exp(s_ip) / (exp(s_ip) + Σ_{n∈N(i)} exp(s_in)) )        for p ∈ P(i)
    L = Σ_i Σ_{p∈P(i)} w(g*(i)) ℓ(i, p) / Σ_i Σ_{p∈P(i)} w(g*(i)),   w(g) = g / 2.

Each positive competes only with negatives (not with the query's other positives), and a query whose best
product is a partial match pulls it in with half the weight of an exact one.

**Multi-class circle loss (Stage 2).** Circle loss (Sun et al., CVPR 2020) re-weights each similarity by
its distance from an optimum, so pairs far from where they should be get the largest gradient. Here every
grade k has an optimum o_k (o_2 > o_1 > o_0) and a margin m_k. For a query and each pair of grades a > b
present among its rows (in-batch rows of other queries count as grade 0 when ``in_batch_negatives``), with
cosine similarities s:

    α_a = [o_a + m_a - s_a]_+ ,   Δ_a = o_a - m_a        (the higher grade, pulled up)
    α_b = [s_b - (o_b - m_b)]_+ , Δ_b = o_b + m_b        (the lower grade, pushed down)
    ℓ(a, b) = softplus( logsumexp_b( γ α_b (s_b - Δ_b) ) + logsumexp_a( -γ α_a (s_a - Δ_a) ) )

averaged over (query, a, b). With the defaults o = (0, 0.5, 1), m = 0.25 the decision boundaries are
s = 0.75 between exact and partial and s = 0.25 between partial and irrelevant: separated bands, one per
grade, instead of the single positive/negative split of a two-class loss.
"""

from __future__ import annotations

import torch
from torch import nn


def _same_product(owner: torch.Tensor, pid: torch.Tensor | None, n_queries: int) -> torch.Tensor:
    """(B, N) True where product row j is (a copy of) one of query i's own rows."""
    own = owner.unsqueeze(0) == torch.arange(n_queries, device=owner.device).unsqueeze(1)
    if pid is None:
        return own
    # query i owns pid x if any of its rows has pid x
    mine = torch.zeros(n_queries, int(pid.max().item()) + 1, dtype=torch.bool, device=owner.device)
    mine[owner, pid] = True
    return mine[:, pid]


class GradedSupConLoss(nn.Module):
    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (got {temperature})")
        self.temperature = temperature

    def forward(self, q: torch.Tensor, p: torch.Tensor, owner: torch.Tensor, grade: torch.Tensor,
                pid: torch.Tensor | None = None) -> torch.Tensor:
        B = q.shape[0]
        s = q @ p.T / self.temperature  # (B, N)
        own = owner.unsqueeze(0) == torch.arange(B, device=q.device).unsqueeze(1)
        g = grade.unsqueeze(0).expand(B, -1)
        neg_inf = torch.full_like(g, -1, dtype=grade.dtype)
        best = torch.where(own, g, neg_inf).max(dim=1).values  # (B,)
        pos = own & (g == best.unsqueeze(1)) & (best.unsqueeze(1) > 0)
        # negatives: own lower-graded rows + other queries' rows that are not (copies of) own products
        neg = (own & ~pos) | ~_same_product(owner, pid, B)
        neg_lse = torch.logsumexp(s.masked_fill(~neg, float("-inf")), dim=1, keepdim=True)  # (B, 1)
        loss = -(s - torch.logaddexp(s, neg_lse.expand_as(s)))  # -log(e^s / (e^s + Σneg))
        w = (best.clamp(min=0).to(s.dtype) / 2.0).unsqueeze(1).expand_as(s)
        wpos = w * pos
        total = wpos.sum()
        if total == 0:
            return (s * 0).sum()
        return (loss * wpos).sum() / total


class MultiClassCircleLoss(nn.Module):
    def __init__(self, optima: tuple[float, float, float] = (0.0, 0.5, 1.0),
                 margins: tuple[float, float, float] = (0.25, 0.25, 0.25), gamma: float = 32.0,
                 in_batch_negatives: bool = True):
        super().__init__()
        if not (optima[0] < optima[1] < optima[2]):
            raise ValueError(f"optima must increase with the grade (got {optima})")
        self.optima, self.margins, self.gamma = tuple(optima), tuple(margins), gamma
        self.in_batch_negatives = in_batch_negatives

    def forward(self, q: torch.Tensor, p: torch.Tensor, owner: torch.Tensor, grade: torch.Tensor,
                pid: torch.Tensor | None = None) -> torch.Tensor:
        B = q.shape[0]
        s = q @ p.T  # cosine (inputs normalised)
        own = owner.unsqueeze(0) == torch.arange(B, device=q.device).unsqueeze(1)
        g = grade.unsqueeze(0).expand(B, -1)
        if self.in_batch_negatives:
            other = ~_same_product(owner, pid, B)
            g = torch.where(own, g, torch.zeros_like(g))
            member = own | other
        else:
            member = own
        terms = []
        for a, b in ((2, 1), (2, 0), (1, 0)):
            A = member & (g == a)
            Bm = member & (g == b)
            has = A.any(dim=1) & Bm.any(dim=1)
            if not has.any():
                continue
            oa, ma, ob, mb = self.optima[a], self.margins[a], self.optima[b], self.margins[b]
            alpha_a = (oa + ma - s).clamp(min=0).detach()
            alpha_b = (s - (ob - mb)).clamp(min=0).detach()
            la = (-self.gamma * alpha_a * (s - (oa - ma))).masked_fill(~A, float("-inf"))
            lb = (self.gamma * alpha_b * (s - (ob + mb))).masked_fill(~Bm, float("-inf"))
            z = torch.logsumexp(lb, dim=1) + torch.logsumexp(la, dim=1)
            terms.append(nn.functional.softplus(z[has]))
        if not terms:
            return (s * 0).sum()
        return torch.cat(terms).mean()
