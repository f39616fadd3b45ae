"""Precision: ``auto`` follows the hardware, ``fp32`` is a no-op, bf16 autocast really computes in bf16."""

from __future__ import annotations

import pytest
import torch

from strata import precision


def test_resolve_follows_the_hardware(monkeypatch):
    assert precision.resolve("fp32") == "fp32" and precision.resolve("bf16") == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda device_type="cpu": True)
    assert precision.resolve("auto") == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda device_type="cpu": False)
    assert precision.resolve("auto") == "fp32"
    with pytest.raises(ValueError, match="one of fp32, bf16, auto"):
        precision.resolve("fp16")


def test_autocast_computes_in_bf16_only_when_asked():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with precision.autocast("fp32"):
        assert (a @ b).dtype == torch.float32
    with precision.autocast("bf16"):
        assert (a @ b).dtype == torch.bfloat16


def test_native_bf16_answers_for_every_device():
    assert isinstance(precision.native_bf16("cpu"), bool)
    assert precision.native_bf16("mps") is False
