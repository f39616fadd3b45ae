"""The training losses (Stage 1, Stage 2, judge distillation), as ``nn.Module``s over a batch of embeddings.

All take ``q`` (B, d) query embeddings, ``p`` (N, d) product embeddings (L2-normalised), ``owner`` (N,) the
index of the batch query each product row belongs to, ``grade`` (N,) its grade (2 exact, 1 partial,
0 irrelevant) and optionally ``pid`` (N,) integer product ids, used so a product that appears under another
query of the batch is never that query's in-batch negative when it is one of its own rows.

**Graded supervised contrastive loss (Stage 1).** For query i let g*(i) be the best grade among its rows
(queries with g* = 0 contribute nothing), P(i) its rows of grade g*, and N(i) every other product row in the
batch: its own lower-graded rows and all rows of other queries (in-batch negatives). With s = q·p / τ,

    ℓ(i, p) = -log( exp(s_ip) / (exp(s_ip) + Σ_{n∈N(i)} exp(s_in)) )        for p ∈ P(i)
    L = Σ_i Σ_{p∈P(i)} w(g*(i)) ℓ(i, p) / Σ_i Σ_{p∈P(i)} w(g*(i)),   w(g) = g / 2.

Each positive competes only with negatives (not with the query's other positives), and a query whose best
product is a partial match pulls it in with half the weight of an exact one. That is ``partials="negative"``:
a partial match of a query that has an exact one is pushed away like an irrelevant product.

``partials="graded"`` (the default) makes the loss follow the grade order instead of a positive/negative
split: every row of grade g >= 1 is a positive with weight w(g), and its negatives are the query's own rows
of a *lower* grade plus all rows of other queries,

    P(i) = {own rows with g >= 1},   N(i, p) = {own rows with g < g_p} ∪ {other queries' rows},

so exact > partial > irrelevant is learnt from one batch, and a substitute (partial) is no longer trained to
look as far from the query as an irrelevant product (graded nDCG gives it credit). ``partials="ignore"`` keeps
the top grade as the only positive and simply drops the query's partial rows from its negatives.
``symmetric`` > 0 adds that weight times the reverse (product -> query) term: each positive row must pick its
own query over the batch's other queries, -log(exp(s_pi) / (exp(s_pi) + Σ_{i' not owning p} exp(s_pi'))),
weighted like the forward term.

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

**Listwise distillation (Stage 2, optional).** The judge (a cross-encoder that sees query and title together)
orders a query's retrieved candidates better than the bi-encoder does (BENCHMARKS.md, judge re-rank). To move
that order into the bi-encoder, each query's rows carry a teacher score t (the judge's expected grade
p(partial) + 2 p(exact), or the human grade where one exists) and the student's cosine distribution over the
same rows is pulled to the teacher's (RocketQAv2-style listwise KL):

    P_t(j) = softmax_j( t_j / τ_t ),   P_s(j) = softmax_j( s_j / τ_s ),   L = mean_i KL(P_t(i) || P_s(i))

over query i's own rows, plus the other queries' rows of the batch at teacher score ``negative_score`` when
``in_batch_negatives``. Unlike a hard grade, the teacher's score says *how much* better one candidate is than
another, and unlike margin-MSE the temperatures make the cosine and grade scales need no alignment.

**Margin-MSE distillation (Stage 2, optional).** Hofstätter et al. (2020): the student matches the teacher's
*margins* between two rows of the same query rather than a distribution. For each query i and each ordered pair
of its own rows (j, k) with t_j > t_k,

    L = mean_{i, j, k} ( (c_ij - c_ik) - λ (t_j - t_k) )²

with cosines c and ``scale`` λ mapping the teacher's grade units to cosine units (an exact-vs-irrelevant margin
of 2 grades becomes 2λ in cosine). Pairs the teacher ties carry no order and are left out.
"""

from __future__ import annotations

import torch
from torch import nn


def _same_product(owner: torch.Tensor, pid: torch.Tensor | None, n_queries: int) -> torch.Tensor:
    """(B, N) True where product row j is (a copy of) one of query i's own rows."""
    own = owner.unsqueeze(0) == torch.arange(n_queries, device=owner.device).unsqueeze(1)
    if pid is None:
        return own
    # query i owns pid x if any of its rows has pid x. Ids are 64-bit hashes: renumber them 0..n-1 in the batch.
    pid = torch.unique(pid, return_inverse=True)[1]
    mine = torch.zeros(n_queries, int(pid.max().item()) + 1, dtype=torch.bool, device=owner.device)
    mine[owner, pid] = True
    return mine[:, pid]


PARTIAL_MODES = ("graded", "negative", "ignore")


class GradedSupConLoss(nn.Module):
    def __init__(self, temperature: float = 0.05, partials: str = "graded", symmetric: float = 0.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (got {temperature})")
        if partials not in PARTIAL_MODES:
            raise ValueError(f"partials must be one of {PARTIAL_MODES} (got {partials!r})")
        if symmetric < 0:
            raise ValueError(f"symmetric must be >= 0 (got {symmetric})")
        self.temperature, self.partials, self.symmetric = temperature, partials, symmetric

    def forward(self, q: torch.Tensor, p: torch.Tensor, owner: torch.Tensor, grade: torch.Tensor,
                pid: torch.Tensor | None = None) -> torch.Tensor:
        B = q.shape[0]
        s = q @ p.T / self.temperature  # (B, N)
        own = owner.unsqueeze(0) == torch.arange(B, device=q.device).unsqueeze(1)
        other = ~_same_product(owner, pid, B)  # other queries' rows that are not (copies of) own products
        g = grade.unsqueeze(0).expand(B, -1)

        def lse(neg: torch.Tensor) -> torch.Tensor:
            return torch.logsumexp(s.masked_fill(~neg, float("-inf")), dim=1, keepdim=True).expand_as(s)

        if self.partials == "graded":
            pos = own & (g > 0)
            w = g.to(s.dtype) / 2.0
            # a positive of grade 2 competes with own grades {0, 1}; one of grade 1 with own grade 0 only
            neg_lse = torch.where(g >= 2, lse((own & (g < 2)) | other), lse((own & (g < 1)) | other))
        else:
            best = torch.where(own, g, torch.full_like(g, -1)).max(dim=1).values  # (B,)
            pos = own & (g == best.unsqueeze(1)) & (best.unsqueeze(1) > 0)
            w = (best.clamp(min=0).to(s.dtype) / 2.0).unsqueeze(1).expand_as(s)
            own_neg = own & ~pos if self.partials == "negative" else own & (g == 0)
            neg_lse = lse(own_neg | other)
        loss = -(s - torch.logaddexp(s, neg_lse))  # -log(e^s / (e^s + Σneg))
        wpos = w * pos
        total = wpos.sum()
        if total == 0:
            return (s * 0).sum()
        out = (loss * wpos).sum() / total
        if self.symmetric:
            # product -> query: each positive row must pick its own query over the batch's other queries
            # (those that own a copy of the product are not its negatives)
            st = s.T  # (N, B)
            q_lse = torch.logsumexp(st.masked_fill(~other.T, float("-inf")), dim=1, keepdim=True).expand_as(st)
            back = -(st - torch.logaddexp(st, q_lse))
            out = out + self.symmetric * (back * wpos.T).sum() / total
        return out


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


class ListwiseDistillLoss(nn.Module):
    """KL(teacher || student) over each query's rows; ``grade`` holds the teacher scores (float)."""

    def __init__(self, student_temperature: float = 0.05, teacher_temperature: float = 0.5,
                 in_batch_negatives: bool = True, negative_score: float = 0.0):
        super().__init__()
        if student_temperature <= 0 or teacher_temperature <= 0:
            raise ValueError(f"temperatures must be > 0 (got {student_temperature}, {teacher_temperature})")
        self.ts, self.tt = student_temperature, teacher_temperature
        self.in_batch_negatives, self.negative_score = in_batch_negatives, negative_score

    def forward(self, q: torch.Tensor, p: torch.Tensor, owner: torch.Tensor, grade: torch.Tensor,
                pid: torch.Tensor | None = None) -> torch.Tensor:
        B = q.shape[0]
        s = q @ p.T / self.ts  # (B, N)
        own = owner.unsqueeze(0) == torch.arange(B, device=q.device).unsqueeze(1)
        member = own | ~_same_product(owner, pid, B) if self.in_batch_negatives else own
        t = torch.where(own, grade.to(s.dtype).unsqueeze(0).expand(B, -1),
                        torch.full_like(s, self.negative_score)) / self.tt
        keep = member.sum(dim=1) >= 2  # a list of one has nothing to order
        if not keep.any():
            return (s * 0).sum()
        log_ps = torch.log_softmax(s.masked_fill(~member, float("-inf")), dim=1)
        log_pt = torch.log_softmax(t.masked_fill(~member, float("-inf")), dim=1)
        kl = torch.where(member, log_pt.exp() * (log_pt - log_ps), torch.zeros_like(s)).sum(dim=1)
        return kl[keep].mean()


class MarginMSELoss(nn.Module):
    """Squared error between the student's and the (scaled) teacher's score margins over a query's own rows."""

    def __init__(self, scale: float = 0.25, min_margin: float = 1e-6):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0 (got {scale})")
        self.scale, self.min_margin = scale, min_margin

    def forward(self, q: torch.Tensor, p: torch.Tensor, owner: torch.Tensor, grade: torch.Tensor,
                pid: torch.Tensor | None = None) -> torch.Tensor:
        c = (q[owner] * p).sum(dim=1)  # (N,) each row's cosine with its own query
        t = grade.to(c.dtype)
        same = owner.unsqueeze(0) == owner.unsqueeze(1)
        dt = t.unsqueeze(1) - t.unsqueeze(0)  # (N, N): t_j - t_k
        pair = same & (dt > self.min_margin)
        if not pair.any():
            return (c * 0).sum()
        dc = c.unsqueeze(1) - c.unsqueeze(0)
        return ((dc - self.scale * dt)[pair] ** 2).mean()


class WeightedLossSum(nn.Module):
    """Σ_k w_k · loss_k over the same batch. Stage 2 with ``supcon_weight`` > 0 is the circle loss plus w times
    the Stage 1 loss: the circle loss moves the grade bands while the contrastive term keeps the in-batch
    ranking Stage 1 learnt (on Home Depot the circle loss alone lowered full-corpus nDCG@10; BENCHMARKS.md)."""

    def __init__(self, *weighted: tuple[float, nn.Module]):
        super().__init__()
        if not weighted or any(w < 0 for w, _ in weighted):
            raise ValueError("WeightedLossSum needs (weight >= 0, loss) pairs")
        self.weights = [float(w) for w, _ in weighted]
        self.losses = nn.ModuleList([m for _, m in weighted])

    def forward(self, q: torch.Tensor, p: torch.Tensor, owner: torch.Tensor, grade: torch.Tensor,
                pid: torch.Tensor | None = None) -> torch.Tensor:
        return sum(w * m(q, p, owner, grade, pid) for w, m in zip(self.weights, self.losses) if w)

