"""Paired bootstrap and the promotion gate."""

import numpy as np
import pytest

from strata.evaluate.significance import GateConfig, gate, paired_bootstrap


def _vals(x):
    return {f"q{i}": float(v) for i, v in enumerate(x)}


def test_identical_runs_p_is_one_and_ci_zero():
    a = _vals(np.linspace(0, 1, 50))
    c = paired_bootstrap(a, a, n_resamples=2000)
    assert c.diff == 0 and c.ci_low == 0 and c.ci_high == 0
    assert c.p_value == 1.0


def test_seeded_and_deterministic():
    rng = np.random.default_rng(1)
    a, b = _vals(rng.random(80)), _vals(rng.random(80))
    assert paired_bootstrap(a, b, n_resamples=3000) == paired_bootstrap(a, b, n_resamples=3000)


def test_only_shared_queries_are_paired():
    c = paired_bootstrap({"a": 0.0, "b": 1.0}, {"b": 1.0, "c": 0.5}, n_resamples=500)
    assert c.num_queries == 1
    with pytest.raises(ValueError, match="share no query"):
        paired_bootstrap({"a": 1.0}, {"b": 1.0})


def test_gate_refuses_challenger_equal_to_champion():
    a = _vals(np.random.default_rng(0).random(100))
    d = gate(a, dict(a), GateConfig(n_resamples=2000))
    assert not d.promote
    assert any("did not improve" in r for r in d.reasons)
    assert any("not significant" in r for r in d.reasons)


def test_gate_accepts_clearly_better():
    rng = np.random.default_rng(0)
    a = rng.random(200) * 0.5
    d = gate(_vals(a), _vals(a + 0.1 + rng.normal(0, 0.02, 200)), GateConfig(n_resamples=2000))
    assert d.promote, d.reasons
    assert d.comparison.ci_low > 0 and d.comparison.p_value < 0.01


def test_gate_refuses_better_but_not_significant():
    rng = np.random.default_rng(3)
    a = rng.random(30)
    b = a + rng.normal(0.01, 0.3, 30)  # tiny mean gain, huge per-query noise
    d = gate(_vals(a), _vals(b), GateConfig(n_resamples=2000))
    c = d.comparison
    if c.diff <= 0:  # the noise happened to make it worse: the gate must still refuse
        assert not d.promote
    assert not d.promote
    assert c.ci_low < 0 < c.ci_high


def test_gate_refuses_significant_but_below_min_lift():
    rng = np.random.default_rng(0)
    a = rng.random(300) * 0.5 + 0.25
    d = gate(_vals(a), _vals(a + 0.01), GateConfig(min_lift=0.10, n_resamples=2000))
    assert not d.promote
    assert any("below the required" in r for r in d.reasons)
    assert d.comparison.p_value < 0.05
