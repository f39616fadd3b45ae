"""Both losses against a direct, loop-by-loop computation of the documented formulas on a tiny batch."""

import math

import numpy as np
import pytest
import torch

from strata.train.losses import GradedSupConLoss, MultiClassCircleLoss


def _unit(*rows):
    x = torch.tensor(rows, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


Q = _unit([1.0, 0.0], [0.0, 1.0])
P = _unit([0.9, 0.1], [0.6, 0.4], [0.2, 0.9], [0.7, 0.7], [0.1, 1.0])
OWNER = torch.tensor([0, 0, 0, 1, 1])
GRADE = torch.tensor([2, 1, 0, 1, 0])


def test_supcon_matches_hand_computation():
    tau = 0.5
    got = GradedSupConLoss(tau)(Q, P, OWNER, GRADE).item()
    s = (Q @ P.T).numpy() / tau
    # query 0: best grade 2 -> positive row 0; negatives rows 1, 2 (own, lower) + 3, 4 (other query)
    l0 = -math.log(math.exp(s[0, 0]) / (math.exp(s[0, 0]) + sum(math.exp(s[0, j]) for j in (1, 2, 3, 4))))
    # query 1: best grade 1 -> positive row 3 (weight 1/2); negatives: row 4 (own, lower) + rows 0, 1, 2
    l1 = -math.log(math.exp(s[1, 3]) / (math.exp(s[1, 3]) + sum(math.exp(s[1, j]) for j in (0, 1, 2, 4))))
    want = (1.0 * l0 + 0.5 * l1) / 1.5
    assert got == pytest.approx(want, rel=1e-9)


def test_supcon_masks_copies_of_own_products_and_skips_all_irrelevant_queries():
    pid = torch.tensor([10, 11, 12, 10, 13])  # row 3 is product 10 again, under query 1
    loss = GradedSupConLoss(0.5)
    s = (Q @ P.T).numpy() / 0.5
    got = loss(Q, P, OWNER, GRADE, pid).item()
    # query 0's denominator drops row 3 (its own product 10); query 1's drops row 0 (its own product 10)
    l0 = -math.log(math.exp(s[0, 0]) / (math.exp(s[0, 0]) + sum(math.exp(s[0, j]) for j in (1, 2, 4))))
    l1 = -math.log(math.exp(s[1, 3]) / (math.exp(s[1, 3]) + sum(math.exp(s[1, j]) for j in (1, 2, 4))))
    assert got == pytest.approx((l0 + 0.5 * l1) / 1.5, rel=1e-9)
    only_zero = loss(Q, P, OWNER, torch.zeros(5, dtype=torch.long))
    assert only_zero.item() == 0.0


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
