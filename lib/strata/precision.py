"""Numeric precision of torch compute: fp32, or bf16 autocast where the hardware computes bf16 natively.

On CPUs with AMX or AVX512-BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later) oneDNN runs bf16 matmuls
at about twice fp32's rate, and autocast keeps the weights, reductions and the loss in fp32, so embeddings stay
within ~1e-4 cosine of fp32. Elsewhere bf16 is emulated and slower than fp32, which is why ``auto`` looks at
the hardware instead of always asking for bf16.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Literal

Precision = Literal["fp32", "bf16", "auto"]
PRECISIONS = ("fp32", "bf16", "auto")
PRECISION_HELP = ("fp32, bf16 (autocast: weights, reductions and the loss stay fp32) or auto (bf16 where the "
                  "device computes it natively: CPUs with AMX or AVX512-BF16, GPUs with bf16 support; else fp32)")


@functools.lru_cache(maxsize=None)
def native_bf16(device_type: str = "cpu") -> bool:
    """True when ``device_type`` computes bf16 in hardware (not by emulation)."""
    import torch

    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device_type != "cpu":
        return False
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's probes (private, hence getattr)
    if any(getattr(torch.cpu, c, lambda: False)() for c in checks):
        return True
    try:  # a torch without the probes: the kernel's flags
        flags = open("/proc/cpuinfo").read().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve(precision: str, device_type: str = "cpu") -> str:
    """``fp32`` or ``bf16``: what ``precision`` means on this device."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device_type) else "fp32"
    return precision


def autocast(precision: str, device_type: str = "cpu") -> Any:
    """A context that runs torch ops under bf16 autocast when ``precision`` resolves to bf16 (else a no-op)."""
    if resolve(precision, device_type) != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type, dtype=torch.bfloat16)
