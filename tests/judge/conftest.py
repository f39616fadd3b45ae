"""Judge test fixtures: a tiny synthetic lakehouse-free training set and one tiny trained distilled judge."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from judge_toys import synthetic_pairs  # noqa: E402


@pytest.fixture(scope="session")
def toy_pairs():
    return synthetic_pairs(1)


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory):
    """A distilled judge trained for a few steps on ~200 toy pairs (1 MiniLM layer: fast)."""
    from strata.judge.config import JudgeTrainConfig
    from strata.judge.trainer import train_distilled

    out = tmp_path_factory.mktemp("judge") / "tiny"
    train_distilled(synthetic_pairs(10), out, JudgeTrainConfig(name="tiny-judge", layers=1, batch_size=16,
                                                               max_pairs=160, lr=3e-4, max_length=32, threads=1))
    return out
