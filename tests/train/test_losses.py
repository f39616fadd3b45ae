"""Both losses against a direct, loop-by-loop computation of the documented formulas on a tiny batch."""

import math

import numpy as np
import pytest
import torch

from strata.train.losses import GradedSupConLoss, ListwiseDistillLoss, MarginMSELoss, MultiClassCircleLoss


def _unit(*rows):
    x = torch.tensor(rows, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


Q = _unit([1.0, 0.0], [0.0, 1.0])
P = _unit([0.9, 0.1], [0.6, 0.4], [0.2, 0.9], [0.7, 0.7], [0.1, 1.0])
OWNER = torch.tensor([0, 0, 0, 1, 1])
GRADE = torch.tensor([2, 1, 0, 1, 0])


def test_supcon_matches_hand_computation():
    tau = 0.5
    got = GradedSupConLoss(tau, partials="negative")(Q, P, OWNER, GRADE).item()
    s = (Q @ P.T).numpy() / tau
    # query 0: best grade 2 -> positive row 0; negatives rows 1, 2 (own, lower) + 3, 4 (other query)
    l0 = -math.log(math.exp(s[0, 0]) / (math.exp(s[0, 0]) + sum(math.exp(s[0, j]) for j in (1, 2, 3, 4))))
    # query 1: best grade 1 -> positive row 3 (weight 1/2); negatives: row 4 (own, lower) + rows 0, 1, 2
    l1 = -math.log(math.exp(s[1, 3]) / (math.exp(s[1, 3]) + sum(math.exp(s[1, j]) for j in (0, 1, 2, 4))))
    want = (1.0 * l0 + 0.5 * l1) / 1.5
    assert got == pytest.approx(want, rel=1e-9)


def test_supcon_masks_copies_of_own_products_and_skips_all_irrelevant_queries():
    pid = torch.tensor([10, 11, 12, 10, 13])  # row 3 is product 10 again, under query 1
    loss = GradedSupConLoss(0.5, partials="negative")
    s = (Q @ P.T).numpy() / 0.5
    got = loss(Q, P, OWNER, GRADE, pid).item()
    # query 0's denominator drops row 3 (its own product 10); query 1's drops row 0 (its own product 10)
    l0 = -math.log(math.exp(s[0, 0]) / (math.exp(s[0, 0]) + sum(math.exp(s[0, j]) for j in (1, 2, 4))))
    l1 = -math.log(math.exp(s[1, 3]) / (math.exp(s[1, 3]) + sum(math.exp(s[1, j]) for j in (1, 2, 4))))
    assert got == pytest.approx((l0 + 0.5 * l1) / 1.5, rel=1e-9)
    only_zero = loss(Q, P, OWNER, torch.zeros(5, dtype=torch.long))
    assert only_zero.item() == 0.0
    # product ids are 64-bit hashes in training (strata.train.groups): same masking, any magnitude or sign
    hashed = torch.tensor([2**62 + 5, -(2**61), 7, 2**62 + 5, 2**40], dtype=torch.int64)
    assert loss(Q, P, OWNER, GRADE, hashed).item() == pytest.approx(got, rel=1e-12)


def _nll(s, i, p, negs):
    return -math.log(math.exp(s[i, p]) / (math.exp(s[i, p]) + sum(math.exp(s[i, j]) for j in negs)))


def test_graded_supcon_orders_exact_over_partial_over_irrelevant():
    tau = 0.5
    got = GradedSupConLoss(tau, partials="graded")(Q, P, OWNER, GRADE).item()
    s = (Q @ P.T).numpy() / tau
    # query 0: exact row 0 vs own rows 1 (partial), 2 (irrelevant) + rows 3, 4 of query 1;
    #          partial row 1 (weight 1/2) vs own row 2 only + rows 3, 4 (row 0, exact, is not its negative)
    # query 1: partial row 3 (weight 1/2) vs own row 4 + rows 0, 1, 2
    want = (1.0 * _nll(s, 0, 0, (1, 2, 3, 4)) + 0.5 * _nll(s, 0, 1, (2, 3, 4)) + 0.5 * _nll(s, 1, 3, (0, 1, 2, 4))) / 2.0
    assert got == pytest.approx(want, rel=1e-9)
    # the default is graded
    assert GradedSupConLoss(tau)(Q, P, OWNER, GRADE).item() == pytest.approx(want, rel=1e-9)


def test_ignore_mode_drops_own_partials_from_the_negatives():
    tau = 0.5
    got = GradedSupConLoss(tau, partials="ignore")(Q, P, OWNER, GRADE).item()
    s = (Q @ P.T).numpy() / tau
    # query 0: exact row 0 vs own irrelevant row 2 + rows 3, 4 (own partial row 1 is neither)
    want = (1.0 * _nll(s, 0, 0, (2, 3, 4)) + 0.5 * _nll(s, 1, 3, (0, 1, 2, 4))) / 1.5
    assert got == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError, match="partials"):
        GradedSupConLoss(tau, partials="positive")


def test_graded_supcon_gradient_pulls_partial_above_irrelevant():
    """One step on the graded loss raises sim(q, partial) - sim(q, irrelevant); the 'negative' mode lowers
    sim(q, partial)."""
    q = _unit([1.0, 0.2])
    base = _unit([0.9, 0.1], [0.5, 0.5], [0.45, 0.55])  # exact, partial, irrelevant
    owner, grade = torch.tensor([0, 0, 0]), torch.tensor([2, 1, 0])
    moved = {}
    for mode in ("graded", "negative"):
        p = base.clone().requires_grad_(True)
        GradedSupConLoss(0.1, partials=mode)(q, p, owner, grade).backward()
        after = torch.nn.functional.normalize(p.detach() - 0.05 * p.grad, dim=1)
        moved[mode] = ((q @ after.T) - (q @ base.T)).squeeze(0)
    assert moved["graded"][1] > moved["graded"][2]
    assert moved["negative"][1] < 0


def _circle_by_hand(q, p, owner, grade, optima, margins, gamma, in_batch):
    s = (q @ p.T).numpy()
    terms = []
    for i in range(len(q)):
        rows = {}
        for j in range(len(p)):
            if owner[j] == i:
                rows.setdefault(int(grade[j]), []).append(s[i, j])
            elif in_batch:
                rows.setdefault(0, []).append(s[i, j])
        for a, b in ((2, 1), (2, 0), (1, 0)):
            if a in rows and b in rows:
                pos = sum(math.exp(-gamma * max(optima[a] + margins[a] - x, 0) * (x - (optima[a] - margins[a])))
                          for x in rows[a])
                neg = sum(math.exp(gamma * max(x - (optima[b] - margins[b]), 0) * (x - (optima[b] + margins[b])))
                          for x in rows[b])
                terms.append(math.log1p(pos * neg))
    return float(np.mean(terms))


@pytest.mark.parametrize("in_batch", [True, False])
def test_circle_matches_hand_computation(in_batch):
    optima, margins, gamma = (0.0, 0.5, 1.0), (0.25, 0.2, 0.15), 4.0
    got = MultiClassCircleLoss(optima, margins, gamma, in_batch)(Q, P, OWNER, GRADE).item()
    want = _circle_by_hand(Q, P, OWNER, GRADE, optima, margins, gamma, in_batch)
    assert got == pytest.approx(want, rel=1e-9)


def test_circle_gradient_separates_the_grades():
    p = P.clone().requires_grad_(True)
    MultiClassCircleLoss(gamma=8.0, in_batch_negatives=False)(Q, p, OWNER, GRADE).backward()
    # moving each row along its own query direction: exact up (negative gradient), irrelevant down
    step = -(p.grad * Q[OWNER]).sum(1)
    assert step[0] > 0 and step[2] < 0 and step[4] < 0


def test_circle_rejects_unordered_optima():
    with pytest.raises(ValueError):
        MultiClassCircleLoss(optima=(0.5, 0.2, 1.0))


def test_symmetric_term_adds_the_product_to_query_direction():
    tau = 0.5
    s = (Q @ P.T).numpy() / tau
    fwd = GradedSupConLoss(tau, partials="graded")(Q, P, OWNER, GRADE).item()
    got = GradedSupConLoss(tau, partials="graded", symmetric=0.5)(Q, P, OWNER, GRADE).item()

    def back(j, i, others):  # product row j picks query i over ``others``
        return -math.log(math.exp(s[i, j]) / (math.exp(s[i, j]) + sum(math.exp(s[k, j]) for k in others)))

    # positives: row 0 (q0, w 1), row 1 (q0, w 1/2), row 3 (q1, w 1/2); each has one other query
    rev = (1.0 * back(0, 0, [1]) + 0.5 * back(1, 0, [1]) + 0.5 * back(3, 1, [0])) / 2.0
    assert got == pytest.approx(fwd + 0.5 * rev, rel=1e-9)


def test_weighted_sum_is_circle_plus_weighted_supcon():
    from strata.train.losses import WeightedLossSum

    circle, supcon = MultiClassCircleLoss(gamma=4.0), GradedSupConLoss(0.5, partials="graded")
    got = WeightedLossSum((1.0, circle), (0.3, supcon))(Q, P, OWNER, GRADE).item()
    want = circle(Q, P, OWNER, GRADE).item() + 0.3 * supcon(Q, P, OWNER, GRADE).item()
    assert got == pytest.approx(want, rel=1e-9)
    assert WeightedLossSum((1.0, circle), (0.0, supcon))(Q, P, OWNER, GRADE).item() == pytest.approx(
        circle(Q, P, OWNER, GRADE).item(), rel=1e-12)
    with pytest.raises(ValueError):
        WeightedLossSum((-1.0, circle))


def _loop(stage: int = 2, **stage2):
    """The typed config a Ray Train worker gets, with Stage 2 knobs set (Stage 1: temperature 0.05, graded)."""
    from strata.train.config import LoopConfig, TrainConfig

    train = TrainConfig(stage1={"temperature": 0.05, "partials": "graded"}, stage2=stage2)
    return LoopConfig(train=train, stage=stage, init_model="m", total_steps=1, shuffle_buffer=64, mlflow_uri="x")


def test_stage2_loop_loss_follows_supcon_weight():
    from strata.train.loop import _loss
    from strata.train.losses import WeightedLossSum

    assert isinstance(_loss(_loop(supcon_weight=0.0, circle_weight=1.0)), MultiClassCircleLoss)
    both = _loss(_loop(supcon_weight=0.5, circle_weight=1.0))
    assert isinstance(both, WeightedLossSum) and both.weights == [1.0, 0.5]
    assert both.losses[1].temperature == 0.05 and both.losses[1].partials == "graded"
    light = _loss(_loop(supcon_weight=1.0, circle_weight=0.25))
    assert light.weights == [0.25, 1.0] and isinstance(light.losses[0], MultiClassCircleLoss)
    alone = _loss(_loop(supcon_weight=0.0, circle_weight=0.5))
    assert isinstance(alone, WeightedLossSum) and alone.weights == [0.5]
    assert _loss(_loop(supcon_weight=0.0, circle_weight=0.0, distill_weight=1.0)) is None  # distillation alone


def test_stage2_distillation_term_is_off_unless_weighted():
    from strata.train.config import Stage2Config
    from strata.train.loop import _distill

    assert _distill(_loop(distill_temperature=0.5, distill_weight=0.0)) is None
    assert _distill(_loop(stage=1, distill_temperature=0.5, distill_weight=1.0)) is None
    w, fn = _distill(_loop(distill_temperature=0.5, distill_weight=0.7))
    assert w == 0.7 and isinstance(fn, ListwiseDistillLoss) and (fn.ts, fn.tt) == (0.05, 0.5)
    assert fn.negative_score == 0.0
    assert _distill(_loop(distill_weight=1.0, distill_negative_score=-1.5))[1].negative_score == -1.5
    assert Stage2Config().distill_weight == 0.0  # off by default
    Stage2Config(circle_weight=0, supcon_weight=0, distill_weight=1.0)
    with pytest.raises(ValueError, match="all 0"):
        Stage2Config(circle_weight=0, supcon_weight=0)


def _kl(t, s):
    pt = [math.exp(x) for x in t]
    ps = [math.exp(x) for x in s]
    zt, zs = sum(pt), sum(ps)
    return sum(a / zt * (math.log(a / zt) - math.log(b / zs)) for a, b in zip(pt, ps))


@pytest.mark.parametrize("in_batch, neg", [(False, 0.0), (True, 0.0), (True, -1.0)])
def test_distill_matches_hand_computation(in_batch, neg):
    ts, tt = 0.1, 0.5
    teacher = torch.tensor([1.8, 1.2, 0.3, 1.5, 0.4], dtype=torch.float64)
    got = ListwiseDistillLoss(ts, tt, in_batch, neg)(Q, P, OWNER, teacher).item()
    s = (Q @ P.T).numpy() / ts
    t = teacher.numpy() / tt
    rows = {0: (0, 1, 2), 1: (3, 4)}
    want = []
    for i, own in rows.items():
        cols = range(5) if in_batch else own
        want.append(_kl([t[j] if j in own else neg / tt for j in cols], [s[i, j] for j in cols]))
    assert got == pytest.approx(sum(want) / 2, rel=1e-9)


def test_distill_gradient_follows_the_teacher_order_and_is_finite():
    # the teacher ranks row 2 above row 0 for query 0: the student's cosine of row 2 must rise, of row 0 fall
    p = P.clone().requires_grad_(True)
    teacher = torch.tensor([0.0, 1.0, 2.0, 1.5, 0.4], dtype=torch.float64)
    ListwiseDistillLoss(0.1, 0.5, in_batch_negatives=False)(Q, p, OWNER, teacher).backward()
    assert torch.isfinite(p.grad).all()
    step = Q[0] @ (-p.grad).T  # first-order change of query 0's cosines under a gradient step
    assert step[2] > 0 > step[0]


def test_distill_skips_single_row_lists_and_masks_copies():
    q, p = Q, P[:2]
    owner, teacher, pid = torch.tensor([0, 1]), torch.tensor([2.0, 1.0], dtype=torch.float64), torch.tensor([7, 7])
    # each query has one row and the other query's row is a copy of its own product: nothing to order
    assert ListwiseDistillLoss()(q, p, owner, teacher, pid).item() == 0.0
    assert ListwiseDistillLoss()(q, p, owner, teacher).item() > 0.0  # without ids the other row is a negative
    with pytest.raises(ValueError):
        ListwiseDistillLoss(student_temperature=0.0)


def test_margin_mse_matches_hand_computation():
    lam = 0.3
    teacher = torch.tensor([1.8, 1.2, 1.2, 1.5, 0.4], dtype=torch.float64)
    got = MarginMSELoss(scale=lam)(Q, P, OWNER, teacher).item()
    c = [(Q[o] @ P[j]).item() for j, o in enumerate(OWNER.tolist())]
    # query 0: (0,1), (0,2); rows 1 and 2 tie and carry no order. Query 1: (3,4). Never across queries.
    pairs = [(0, 1), (0, 2), (3, 4)]
    want = sum(((c[j] - c[k]) - lam * (teacher[j].item() - teacher[k].item())) ** 2 for j, k in pairs) / 3
    assert got == pytest.approx(want, rel=1e-9)


def test_margin_mse_gradient_and_edge_cases():
    p = P.clone().requires_grad_(True)
    # the teacher wants row 2 well above row 0 for query 0, the opposite of their cosines
    teacher = torch.tensor([0.0, 1.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    MarginMSELoss(0.25)(Q, p, OWNER, teacher).backward()
    step = Q[0] @ (-p.grad).T
    assert torch.isfinite(p.grad).all() and step[2] > 0 > step[0]
    # all ties: nothing to learn, a zero that still backpropagates
    flat = MarginMSELoss()(Q, P.clone().requires_grad_(True), OWNER, torch.ones(5, dtype=torch.float64))
    assert flat.item() == 0.0 and flat.requires_grad
    with pytest.raises(ValueError):
        MarginMSELoss(scale=0.0)
