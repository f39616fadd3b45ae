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
