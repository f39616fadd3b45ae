from pathlib import Path

import pytest

from strata.config import ConfigError, load_config


@pytest.mark.parametrize("profile", ["demo", "local", "cluster"])
def test_profiles_load(profile):
    cfg = load_config(profile)
    assert cfg.profile == profile
    assert cfg.eval.k >= 100


def test_override_and_file(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("eval:\n  max_queries: 7\nembed:\n  batch_size: 16\n")
    cfg = load_config("demo", f, ["embed.batch_size=32", "engine.ray_address=auto"])
    assert cfg.eval.max_queries == 7
    assert cfg.embed.batch_size == 32  # CLI beats file
    assert cfg.engine.ray_address == "auto"


def test_error_names_field_and_value():
    with pytest.raises(ConfigError) as e:
        load_config("demo", overrides=["embed.batch_size=-3"])
    assert "embed.batch_size" in str(e.value) and "-3" in str(e.value)


def test_unknown_field_and_profile_rejected():
    with pytest.raises(ConfigError, match="embed.bogus"):
        load_config("demo", overrides=["embed.bogus=1"])
    with pytest.raises(ConfigError, match="unknown profile"):
        load_config("nope")


def test_bad_remote_url():
    with pytest.raises(ConfigError, match="engine.spark_remote"):
        load_config("demo", overrides=["engine.spark_remote=http://x:1"])


def test_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("STRATA_DATA", str(tmp_path))
    cfg = load_config("demo")
    assert cfg.data.resolved_root() == tmp_path
    assert cfg.data.source_path(cfg.data.sources[0]) == tmp_path / "homedepot/train.csv.gz"


def test_remine_lays_its_changes_over_mine():
    cfg = load_config("demo", overrides=["mine.max_queries=40",
                                         "pipeline.remine={n_ann: 20, rank_min: 0, rank_max: 20}"])
    m = cfg.remine_config("/runs/r/train/stage1/model")
    assert (m.model, m.n_ann, m.rank_min, m.rank_max) == ("/runs/r/train/stage1/model", 20, 0, 20)
    assert m.max_queries == 40 and m.n_random == cfg.mine.n_random  # the rest is mine's
    assert load_config("demo").pipeline.remine is None


def test_remine_is_judged_when_the_first_pass_is_not():
    cfg = load_config("demo", overrides=["mine.use_judge=false", "pipeline.remine={}"])
    assert cfg.mine.use_judge is False and cfg.remine_config("m").use_judge is True


def test_local_profile_is_the_measured_recipe():
    """`strata run --profile local`: unjudged first pass -> Stage 1 -> judged re-mining -> distilled Stage 2."""
    cfg = load_config("local")
    assert cfg.mine.use_judge is False and cfg.pipeline.judge
    m = cfg.remine_config("s1")
    assert (m.use_judge, m.n_ann, m.rank_min, m.rank_max) == (True, 20, 0, 20)
    assert m.n_sibling == m.n_attribute == m.n_cousin == m.n_random == 0
    s2 = cfg.train.stage2
    assert (s2.circle_weight, s2.distill_weight, s2.label_judged, s2.judged_rows) == (0, 1, False, 4)
    assert s2.uses_teachers
    assert load_config("local", overrides=["pipeline.remine=null"]).pipeline.remine is None


@pytest.mark.parametrize("overrides, message", [
    (["pipeline.remine={n_ann: -1}"], r"pipeline\.remine\.n_ann: .*greater than or equal to 0 \(got -1\)"),
    (["pipeline.remine={bogus: 1}"], r"pipeline\.remine\.bogus"),
    (["pipeline.remine={rank_min: 60}"], r"pipeline\.remine: rank_max \(50\) must exceed rank_min \(60\)"),
    (["pipeline.remine={model: m}"], r"always uses the Stage 1 model"),
    (["pipeline.remine={use_judge: false}"], r"pipeline\.remine\.use_judge"),
    (["pipeline.remine={}", "pipeline.train=false"], r"needs pipeline\.train=true"),
    (["pipeline.remine={}", "pipeline.judge=false"], r"needs a judge"),
])
def test_remine_errors_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config("demo", overrides=overrides)
    assert "'profile'" not in str(e.value)  # a cross-section check does not dump the whole config


def test_remine_with_a_configured_judge_needs_no_judge_training():
    cfg = load_config("demo", overrides=["pipeline.remine={}", "pipeline.judge=false", "judge.model=/j"])
    assert cfg.pipeline.remine.model_dump(exclude_unset=True) == {}
