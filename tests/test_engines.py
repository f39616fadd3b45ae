from strata.engines import EngineConfig
import pytest
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


def test_sail_session_timeout_is_set_per_server():
    """The embedded server gets ``sail_session_timeout_secs`` (Sail's default 900 s ends a run's session while
    Ray trains): a 2 s timeout ends an idle session, the default keeps it, and the environment is left as it
    was."""
    import os
    import time

    import pytest

    from strata.engines import EngineConfig
    from strata.engines import Engines

    assert EngineConfig().sail_session_timeout_secs >= 24 * 3600
    with Engines(EngineConfig(sail_session_timeout_secs=2)) as short, Engines(EngineConfig()) as default:
        assert short.spark.range(3).count() == 3 and default.spark.range(3).count() == 3
        assert "SAIL_SPARK__SESSION_TIMEOUT_SECS" not in os.environ
        time.sleep(6)
        assert default.spark.range(2).count() == 2
        with pytest.raises(Exception, match="not running|session"):
            short.spark.range(2).count()


def test_the_cluster_environment_is_laid_over_the_engine_section():
    from strata.engines import EngineConfig

    base = EngineConfig()
    assert base.with_env({}) == base
    assert base.with_env({"STRATA_SPARK": "classic"}).spark == "classic"
    # a Spark Connect URL in the environment turns the embedded default into a client of that server
    assert base.with_env({"STRATA_SPARK_REMOTE": "sc://127.0.0.1:15002"}).spark == "connect"
    assert EngineConfig(spark="classic").with_env({"STRATA_SPARK_REMOTE": "sc://h:1"}).spark == "classic"
    assert base.with_env({"STRATA_RAY_ADDRESS": "auto"}).ray_address == "auto"
    with pytest.raises(ValueError, match="STRATA_SPARK"):
        base.with_env({"STRATA_SPARK": "spark"})
