"""Training the distilled judge: a stacked tiny judge end to end (cross-encoder, then grade head)."""

import json

import numpy as np

from strata.judge.config import JudgeTrainConfig
from strata.judge.grade_head import GradeHead
from strata.judge.model import HEAD_FEATURES, DistilledJudge
from strata.judge.trainer import train_judge


def test_stacked_judge_trains_saves_and_scores(tmp_path, toy_pairs):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from judge_toys import synthetic_pairs

    pairs = synthetic_pairs(10)
    out = tmp_path / "stacked"
    res = train_judge(pairs, out, list(pairs["product_text"].unique()),
                      JudgeTrainConfig(stack_fraction=0.3, name="stacked", layers=1, batch_size=16, max_pairs=120,
                                       lr=3e-4, max_length=32, threads=1))
    meta = json.loads((out / "judge.json").read_text())
    assert meta["grade_head"]["features"] == list(HEAD_FEATURES) and meta["grade_head"]["head_pairs"] > 10
    assert res.judge_id == meta["judge_id"] == f"stacked@{meta['version']}"
    assert GradeHead.exists(out) and (out / "token_stats.json").is_file()
    j = DistilledJudge(out)
    assert j.judge_id == res.judge_id and j.grade_head is not None
    q, t = list(pairs["query"][:20]), list(pairs["product_text"][:20])
    p = j.predict_proba(q, t)
    ce = j.cross_encoder_proba(q, t)
    assert p.shape == (20, 3) and np.allclose(p.sum(1), 1) and not np.allclose(p, ce)
    # the head learnt the toy task on pairs the cross-encoder never saw
    assert (p.argmax(1) == pairs["grade"].to_numpy()[:20]).mean() >= 0.6


def test_a_judge_scores_at_the_precision_it_was_trained_in(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from judge_toys import synthetic_pairs

    pairs = synthetic_pairs(6)
    cfg = dict(stack_fraction=0.0, layers=1, batch_size=16, max_pairs=48, max_length=24, threads=1)
    out16 = tmp_path / "bf16"
    train_judge(pairs, out16, list(pairs["product_text"].unique()), JudgeTrainConfig(precision="bf16", **cfg))
    assert json.loads((out16 / "judge.json").read_text())["precision"] == "bf16"
    j16 = DistilledJudge(out16)
    assert j16.precision == "bf16"
    q, t = list(pairs["query"][:8]), list(pairs["product_text"][:8])
    p16 = j16.cross_encoder_proba(q, t)
    j16.precision = "fp32"  # the same weights in fp32: bf16 moves the probabilities by rounding only
    assert p16.dtype == np.float32 and np.abs(p16 - j16.cross_encoder_proba(q, t)).max() < 0.05


def test_keep_layers_cuts_without_a_load_report(capfd):
    """The first N layers, with the full model's weights, and no UNEXPECTED-keys report from transformers."""
    import torch
    from transformers import AutoModel

    from strata.embed.encoder import resolve_model
    from strata.judge.trainer import keep_layers

    base = resolve_model("baseline")
    full = AutoModel.from_pretrained(base, local_files_only=True)
    capfd.readouterr()
    cut = keep_layers(AutoModel.from_pretrained(base, local_files_only=True), 2)
    out, err = capfd.readouterr()
    assert "UNEXPECTED" not in out + err and "LOAD REPORT" not in out + err
    assert len(cut.encoder.layer) == cut.config.num_hidden_layers == 2
    assert torch.equal(cut.encoder.layer[1].output.dense.weight, full.encoder.layer[1].output.dense.weight)
    assert keep_layers(full, None) is full and len(full.encoder.layer) == 6
