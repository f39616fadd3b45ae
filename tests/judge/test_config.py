"""The judge's typed settings: JudgeTrainConfig's defaults are the judge ``strata run`` trained, and a bad
knob fails when set, naming the field."""

import pytest
from pydantic import ValidationError

from strata.judge.config import JudgeTrainConfig

# What the pipeline's judge_train step passed train_judge before the config existed: max_length 48, its
# stack_fraction 0.25, no layer/pair/time caps, the rest train_judge's / train_distilled's keyword defaults.
PIPELINE_DEFAULTS = {
    "name": "distilled-minilm", "base": "baseline", "layers": None, "pooling": "mean", "epochs": 1.0,
    "batch_size": 32, "lr": 5e-5, "head_lr": 2e-3, "max_length": 48, "max_pairs": None, "max_seconds": None,
    "seed": 13, "threads": None, "precision": "fp32", "stack_fraction": 0.25, "encoder": "baseline",
    "encoder_max_seq_length": 48,
}


def test_defaults_are_what_the_pipeline_trained_with():
    assert JudgeTrainConfig().model_dump() == PIPELINE_DEFAULTS
    assert all(f.description for f in JudgeTrainConfig.model_fields.values())  # every knob says what it does


@pytest.mark.parametrize("field, value", [("lr", 0), ("stack_fraction", 1.0), ("max_length", 4), ("layers", 0),
                                          ("pooling", "max"), ("max_pairs", 0), ("batch_size", 0)])
def test_a_bad_value_names_the_field(field, value):
    with pytest.raises(ValidationError) as e:
        JudgeTrainConfig(**{field: value})
    assert e.value.errors()[0]["loc"] == (field,)
    cfg = JudgeTrainConfig()
    with pytest.raises(ValidationError, match=field):  # assignments are validated too
        setattr(cfg, field, value)


def test_unknown_knobs_are_refused():
    with pytest.raises(ValidationError, match="learning_rate"):
        JudgeTrainConfig(learning_rate=1e-4)
