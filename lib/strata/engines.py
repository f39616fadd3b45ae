"""One place that hands out the Spark session and the Ray runtime for a run.

Both start lazily (a stage that needs only Ray never pays for Spark) and are shared by every stage of a
run; ``Engines`` is a context manager that shuts down what it started, and only that. Spark is reached
through Spark Connect: by default an embedded Sail server started in-process, otherwise a remote
``sc://`` URL or a classic (JVM) session for clusters without Connect.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Literal, Mapping

from pydantic import Field, field_validator

from strata.config_base import StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


class EngineConfig(StrictModel):
    """Where Spark and Ray run. Defaults are embedded: Sail in-process and a local Ray."""

    spark: Literal["sail", "connect", "classic"] = "sail"
    spark_remote: str | None = Field(None, description="sc://host:port when spark=connect")
    spark_master: str = Field("local[2]", description="master URL when spark=classic")
    sail_session_timeout_secs: int = Field(7 * 24 * 3600, ge=1, description="embedded Sail: end the Spark "
                                           "session after this many idle seconds (Sail's own default, 900, ends "
                                           "it while Ray trains or judges for longer); SAIL_SPARK__SESSION_"
                                           "TIMEOUT_SECS in the environment wins")
    ray_address: str | None = Field(None, description="None starts a local Ray; 'auto' or ray://... joins one")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray (None: all)")

    @field_validator("spark_remote")
    @classmethod
    def _remote_is_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("sc://"):
            raise ValueError(f"must start with sc:// (got {v!r})")
        return v

    def with_env(self, env: Mapping[str, str] | None = None) -> "EngineConfig":
        """This config with the cluster's environment laid over it, the way every command and job reads it:
        ``STRATA_SPARK`` (sail | connect | classic) picks the Spark kind, ``STRATA_SPARK_REMOTE`` (read when
        Spark starts, so a URL with a token never enters the config) makes an embedded default ``connect``,
        ``STRATA_RAY_ADDRESS`` joins a Ray cluster."""
        env = os.environ if env is None else env
        update: dict[str, Any] = {}
        kind = env.get("STRATA_SPARK")
        if kind:
            if kind not in ("sail", "connect", "classic"):
                raise ValueError(f"STRATA_SPARK: must be sail, connect or classic (got {kind!r})")
            update["spark"] = kind
        elif env.get("STRATA_SPARK_REMOTE") and self.spark == "sail":
            update["spark"] = "connect"
        if env.get("STRATA_RAY_ADDRESS"):
            update["ray_address"] = env["STRATA_RAY_ADDRESS"]
        return self.model_copy(update=update) if update else self


def _init_with_retry(ray: Any, kwargs: dict[str, Any], attempts: int = 3) -> None:
    """``ray.init`` with retries: on a small, busy machine a local cluster's GCS/raylet can miss its
    start-up deadline (seen with 2 cores and another local Ray alive); a second start usually succeeds."""
    import time

    for attempt in range(1, attempts + 1):
        try:
            ray.init(**kwargs)
            return
        except Exception as e:  # noqa: BLE001 - Ray raises several types for a failed start
            if attempt == attempts or "address" in kwargs and kwargs["address"] not in (None, "local"):
                raise
            log.warning("Ray failed to start (attempt %d/%d): %s; retrying", attempt, attempts, e)
            ray.shutdown()
            time.sleep(2 * attempt)


class Engines:
    """Lazy Spark + Ray for one run. ``with Engines(cfg) as eng: eng.spark ...; eng.ray()``."""

    def __init__(self, config: EngineConfig):
        self.config = config.with_env()
        self._spark: SparkSession | None = None
        self._sail: Any = None
        self._ray_started = False

    # -- Spark ---------------------------------------------------------------------------------------
    @property
    def spark(self) -> "SparkSession":
        if self._spark is None:
            self._spark = self._start_spark()
        return self._spark

    @property
    def spark_kind(self) -> str:
        return self.config.spark

    def _start_spark(self) -> "SparkSession":
        cfg = self.config
        remote = os.environ.get("STRATA_SPARK_REMOTE") or cfg.spark_remote
        if cfg.spark == "sail":
            from pysail.spark import SparkConnectServer
            from pyspark.sql import SparkSession

            # Sail ends a session idle for spark.session_timeout_secs (default 900 s); a run's session waits
            # idle while Ray trains or judges, then is needed again. Set for this server only.
            key = "SAIL_SPARK__SESSION_TIMEOUT_SECS"
            preset = key in os.environ
            if not preset:
                os.environ[key] = str(cfg.sail_session_timeout_secs)
            try:
                self._sail = SparkConnectServer(ip="127.0.0.1", port=0)
                self._sail.start(background=True)
            finally:
                if not preset:
                    del os.environ[key]
            _, port = self._sail.listening_address
            log.info("started embedded Sail Spark Connect server on port %s", port)
            # create(), not getOrCreate(): the latter hands back a cached session bound to another server.
            return SparkSession.builder.remote(f"sc://127.0.0.1:{port}").create()
        if cfg.spark == "connect":
            from pyspark.sql import SparkSession

            if not remote:
                raise ValueError("engine.spark_remote: required when engine.spark=connect (got None)")
            return SparkSession.builder.remote(remote).create()
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master(cfg.spark_master).appName("strata")
        builder = builder.config("spark.sql.shuffle.partitions", "8")
        if os.environ.get("STRATA_SPARK_DELTA", "0") == "1":  # classic Spark with delta-spark installed
            builder = builder.config(
                "spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension"
            ).config(
                "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
            )
        return builder.getOrCreate()

    # -- Ray -----------------------------------------------------------------------------------------
    def ray(self) -> Any:
        """Initialise Ray once (local, or the configured address) and return the module."""
        import ray

        if not ray.is_initialized():
            address = self.config.ray_address
            kwargs: dict[str, Any] = {
                "ignore_reinit_error": True,
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": True,
                "logging_level": logging.WARNING,
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = self.config.ray_num_cpus
            _init_with_retry(ray, kwargs)
            self._ray_started = True
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = True
            ctx.print_on_execution_start = False
        return ray

    # -- lifecycle -----------------------------------------------------------------------------------
    def close(self) -> None:
        if self._spark is not None:
            try:
                self._spark.stop()
            except Exception as e:  # noqa: BLE001 - shutdown must not mask the run's own error
                log.warning("spark stop failed: %s", e)
            self._spark = None
        if self._sail is not None:
            try:
                self._sail.stop()
            except Exception as e:  # noqa: BLE001
                log.warning("sail stop failed: %s", e)
            self._sail = None
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False

    def __enter__(self) -> "Engines":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
