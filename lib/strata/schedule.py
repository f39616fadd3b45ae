"""The learning-rate schedule every fine-tune here uses: linear warm-up to the base rate, then linear decay
to 0 at the last step (the shape of ``transformers.get_linear_schedule_with_warmup``, written once).

Step ``s`` (0-based) gets the factor ``min((s + 1) / warm, max(0, (total - s) / max(1, total - warm)))``, with
``warm = max(1, int(warmup_ratio * total))``. The factor function is a plain function (not a callable object),
so ``LambdaLR.state_dict`` stores nothing for it and a checkpoint's scheduler state loads into any schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Warm-up length: ``warmup_ratio`` of the steps, at least one."""
    return max(1, int(warmup_ratio * total_steps))


def linear_warmup_decay(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """The factor on the base learning rate at step ``s`` (see the module doc)."""
    warm = warmup_steps(total_steps, warmup_ratio)

    def factor(s: int) -> float:
        return min((s + 1) / warm, max(0.0, (total_steps - s) / max(1, total_steps - warm)))

    return factor


def warmup_schedule(optimizer: Any, total_steps: int, warmup_ratio: float) -> Any:
    """A ``torch.optim.lr_scheduler.LambdaLR`` over ``optimizer`` (every parameter group) with
    ``linear_warmup_decay``: call ``step()`` once per optimizer step."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(total_steps, warmup_ratio))
