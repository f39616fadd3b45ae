"""Issue 11.6 - config-provided input paths stay inside configured roots.

``data.sources[].path`` is relative to ``data.root`` or absolute. A relative path may not leave data.root
(no ``..`` escape, no symlink out of it); an absolute path must lie in an allowed root: data.root,
``$STRATA_DATA``, the default ``../shared/data``, or a folder listed in ``data.allowed_roots``. The check runs
when a config is loaded (``strata config`` / ``strata run`` fail fast with exit 2) and again whenever a source
path is resolved for reading (programmatic configs), and the error says how to allow a folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strata.config import ConfigError, StrataConfig, load_config
from strata.ingest.config import DataConfig, SourceConfig, default_data_root


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    monkeypatch.delenv("STRATA_DATA", raising=False)
    data = tmp_path / "data"
    (data / "homedepot").mkdir(parents=True)
    (data / "homedepot" / "train.csv.gz").write_bytes(b"")
    outside = tmp_path / "outside"
    (outside / "wands").mkdir(parents=True)
    (outside / "secret.txt").write_text("not data")
    return data, outside


def _load(data: Path, *sources: str, extra: list[str] | None = None):
    items = ", ".join(f"{{name: homedepot, path: '{s}'}}" for s in sources)
    return load_config("demo", overrides=[f"data.root={data}", f"data.sources=[{items}]", *(extra or [])])


def test_relative_paths_inside_data_root_are_fine(roots):
    data, _ = roots
    cfg = _load(data, "homedepot/train.csv.gz", "homedepot/../homedepot/train.csv.gz", "./homedepot", "new/later")
    assert cfg.data.source_path(cfg.data.sources[0]) == data / "homedepot/train.csv.gz"


@pytest.mark.parametrize("path", ["../outside/secret.txt", "homedepot/../../outside/secret.txt", "..",
                                  "../../../../../../etc/passwd"])
def test_relative_path_escaping_data_root_is_rejected(roots, path):
    data, _ = roots
    with pytest.raises(ConfigError) as e:
        _load(data, "homedepot/train.csv.gz", path)
    msg = str(e.value)
    assert "data.sources[1].path" in msg and "escapes data.root" in msg and str(data) in msg
    assert "data.allowed_roots" in msg  # says how to point at data elsewhere


def test_symlink_out_of_data_root_is_rejected_unless_its_target_is_allowed(roots):
    data, outside = roots
    (data / "wands").symlink_to(outside / "wands", target_is_directory=True)
    (data / "homedepot" / "leak.csv").symlink_to(outside / "secret.txt")
    for path in ("wands", "homedepot/leak.csv"):
        with pytest.raises(ConfigError) as e:
            _load(data, path)
        assert "through a symlink" in str(e.value) and str(outside.resolve()) in str(e.value)
    cfg = _load(data, "wands", extra=[f"data.allowed_roots=['{outside / 'wands'}']"])
    assert cfg.data.source_path(cfg.data.sources[0]) == data / "wands"
    (data / "inner").symlink_to(data / "homedepot", target_is_directory=True)  # a symlink within the root
    _load(data, "inner/train.csv.gz")


def test_absolute_path_outside_the_allowed_roots_is_rejected_with_how_to_allow_it(roots):
    data, outside = roots
    with pytest.raises(ConfigError) as e:
        _load(data, str(outside / "secret.txt"))
    msg = str(e.value)
    assert "outside the allowed data roots" in msg and "data.allowed_roots" in msg and str(data) in msg
    with pytest.raises(ConfigError):
        _load(data, "/etc/passwd")
    with pytest.raises(ConfigError):  # '..' inside an absolute path is resolved before the check
        _load(data, str(data / ".." / "outside" / "secret.txt"))
    cfg = _load(data, str(outside / "wands"), extra=[f"data.allowed_roots=['{outside}']"])
    assert cfg.data.source_path(cfg.data.sources[0]) == outside / "wands"


def test_absolute_paths_under_data_root_strata_data_or_the_default_root_are_fine(roots, monkeypatch):
    data, outside = roots
    _load(data, str(data / "homedepot" / "train.csv.gz"))
    monkeypatch.setenv("STRATA_DATA", str(outside))  # the operator's environment is a configured root
    _load(data, str(outside / "wands"))
    shared = default_data_root()
    if shared.is_dir():  # ../shared/data next to the checkout (where the profiles point)
        _load(data, str(shared / "homedepot" / "train.csv.gz"))


def test_allowed_roots_must_be_absolute(roots):
    data, _ = roots
    with pytest.raises(ConfigError, match="data.allowed_roots"):
        _load(data, "homedepot", extra=["data.allowed_roots=[relative/dir]"])


def test_programmatic_configs_are_confined_when_the_path_is_read(roots):
    """No load_config: the ingest job resolves each source through source_path, which refuses."""
    from strata.ingest.run import ingest

    data, outside = roots
    cfg = StrataConfig(data=DataConfig(root=str(data), sources=[
        SourceConfig(name="wands", path=str(outside / "wands")),
        SourceConfig(name="homedepot", path="homedepot/train.csv.gz")]))
    with pytest.raises(ConfigError, match=r"data.sources\[0\].path"):
        cfg.data.check_sources()
    with pytest.raises(ConfigError, match="outside the allowed data roots"):
        ingest(cfg.data, cfg.split, engines=None, lakehouse=None, run_id="r")  # refused before any engine is touched
    cfg = StrataConfig(data=DataConfig(root=str(data), sources=[SourceConfig(name="wands", path="../outside")]))
    with pytest.raises(ConfigError, match="escapes data.root"):
        cfg.data.source_path(cfg.data.sources[0])


def test_shipped_profiles_resolve_inside_their_roots(monkeypatch):
    monkeypatch.delenv("STRATA_DATA", raising=False)
    for profile in ("demo", "local", "cluster"):
        cfg = load_config(profile)
        root = cfg.data.resolved_root().resolve()
        for s in cfg.data.sources:
            assert root in cfg.data.source_path(s).resolve().parents


def test_cli_reports_a_confinement_error_with_exit_2(roots):
    from strata.cli import app

    data, _ = roots
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level
    try:  # the CLI callback reconfigures the root logger
        r = CliRunner().invoke(app, ["config", "--set", f"data.root={data}",
                                     "--set", "data.sources=[{name: homedepot, path: ../../etc/passwd}]"])
    finally:
        root_logger.handlers[:] = handlers
        root_logger.setLevel(level)
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "escapes data.root" in out and "data.sources[0].path" in out
    assert "data.allowed_roots=['/abs/folder']" in out  # the how-to survives the console's markup

