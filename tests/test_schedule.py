"""The warm-up + linear decay learning-rate schedule (``strata.schedule``), by hand."""

import pytest

from strata.schedule import linear_warmup_decay, warmup_schedule, warmup_steps


def test_factor_by_hand():
    # 10 steps, 20 % warm-up: warm = 2; then (10 - s) / 8
    f = linear_warmup_decay(10, 0.2)
    assert [f(s) for s in range(11)] == pytest.approx([0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125,
                                                       0.0])
    assert warmup_steps(10, 0.2) == 2 and warmup_steps(10, 0.0) == 1 and warmup_steps(100, 0.06) == 6


def test_equals_the_lambdas_it_replaced():
    """train/loop.py, judge/distilled.py and bench/variant_loop.py wrote this lambda by hand."""
    for total, ratio in ((1, 0.1), (7, 0.1), (100, 0.06), (333, 0.1), (50, 0.5)):
        warm = max(1, int(ratio * total))
        old = lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))  # noqa: E731
        new = linear_warmup_decay(total, ratio)
        assert [new(s) for s in range(total + 2)] == [old(s) for s in range(total + 2)]


def test_lambda_lr_steps_and_state():
    import torch

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = warmup_schedule(opt, 4, 0.5)  # warm = 2: factors 0.5, 1.0, 1.0, 0.5, 0.0
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 2.0, 2.0, 1.0, 0.0])
    # a plain function: the scheduler state holds nothing for it (checkpoints load as before)
    assert sched.state_dict()["lr_lambdas"] == [None]
