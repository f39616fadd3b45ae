from strata.config import EngineConfig
from strata.engines import Engines


def test_engines_start_lazily_and_close():
    eng = Engines(EngineConfig())
    assert eng._spark is None and eng._sail is None  # nothing started until asked
    assert eng.spark.range(3).count() == 3
    eng.close()
    assert eng._spark is None and eng._sail is None


def test_connect_needs_remote():
    import pytest

    with pytest.raises(ValueError, match="engine.spark_remote"):
        Engines(EngineConfig(spark="connect")).spark
