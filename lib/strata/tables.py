"""The read/write helpers over the canonical tables in Delta (or parquet): ``Lakehouse``.

Stage code asks a ``Lakehouse`` for a table by name; it never builds a path by hand. Writes go through
Spark (Sail in-process by default, a cluster otherwise); table metadata and history are read with
delta-rs (``deltalake``), which works the same whichever engine wrote the table. Driver-side reads stream:
``scan_batches`` yields bounded record batches (filter and columns pushed down), ``scan_frame`` collects the
matching rows as one pandas frame; ``read_arrow`` materialises a whole table (small tables and tests).

The table specs (names, schemas, keys) live in ``strata.table_specs``; ``TableSpec``, ``TABLES``, ``spec`` and
``empty_frame`` are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from strata.storage import ObjectPath, StoragePath, location
from strata.table_specs import TABLES, TableSpec, empty_frame, spec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow.compute as pc
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["BATCH_ROWS", "Lakehouse", "TABLES", "TableSpec", "empty_frame", "spec"]

# Rows per record batch ``Lakehouse.scan_batches`` hands to the caller (the scanner may return fewer).
BATCH_ROWS = 4096


class Lakehouse:
    """Table locations under one root (a local folder or an ``s3://`` URI: ``strata.storage``), and Spark/delta-rs
    I/O for them."""

    def __init__(self, root: "str | Path | ObjectPath", fmt: str = "delta"):
        self.root: StoragePath = location(root)
        if fmt not in ("delta", "parquet"):
            raise ValueError(f"lakehouse.format: must be delta or parquet (got {fmt!r})")
        self.format = fmt
        if fmt == "parquet" and isinstance(self.root, ObjectPath):
            # parquet upserts swap folders by rename, which an object store cannot do atomically
            raise ValueError(f"lakehouse.format=parquet needs a local root (got {self.root}): object storage "
                             "takes lakehouse.format=delta")

    @property
    def remote(self) -> bool:
        return isinstance(self.root, ObjectPath)

    def path(self, name: str) -> StoragePath:
        spec(name)
        return self.root / name

    def staging(self, name: str) -> StoragePath:
        """``<root>/_staging/<name>``: where a job stages files that Spark and the driver both read, so on a
        cluster it is the lakehouse's own (shared) storage. The job removes it when it ends."""
        return self.root / "_staging" / name

    def exists(self, name: str) -> bool:
        p = self.path(name)
        if self.format == "delta":
            return (p / "_delta_log").is_dir()
        return p.is_dir() and any(p.glob("*.parquet"))

    # -- writes (Spark) ------------------------------------------------------------------------------
    def to_spark(self, spark: "SparkSession", name: str, frame: "pd.DataFrame | pa.Table") -> "DataFrame":
        """An Arrow/pandas frame cast to the table's schema, as a Spark DataFrame."""
        schema = spec(name).schema
        if isinstance(frame, pa.Table):
            table = frame.select(schema.names).cast(schema)
        else:
            table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
        return spark.createDataFrame(table, schema=_spark_schema(schema))

    def write(self, df: "DataFrame", name: str, mode: str = "overwrite") -> None:
        """Write a Spark DataFrame to the table (overwrite or append), creating it if needed."""
        self.root.mkdir(parents=True, exist_ok=True)
        writer = df.select(*spec(name).schema.names).write.format(self.format).mode(mode)
        writer.save(str(self.path(name)))

    # -- reads ---------------------------------------------------------------------------------------
    def read(self, spark: "SparkSession", name: str, version: int | None = None) -> "DataFrame":
        reader = spark.read.format(self.format)
        if version is not None:
            if self.format != "delta":
                raise ValueError("time travel (version) needs lakehouse.format=delta")
            reader = reader.option("versionAsOf", version)
        return reader.load(str(self.path(name)))

    def read_arrow(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """Read without Spark (delta-rs / pyarrow): for small driver-side tables and tests."""
        if self.format == "delta":
            from deltalake import DeltaTable

            return DeltaTable(str(self.path(name))).to_pyarrow_table(columns=columns)
        import pyarrow.parquet as pq

        return pq.read_table(str(self.path(name)), columns=columns)

    def scan_batches(self, name: str, columns: list[str] | None = None, filter: "pc.Expression | None" = None,
                     batch_rows: int = BATCH_ROWS, version: int | None = None) -> Iterator[pa.RecordBatch]:
        """Record batches of ``columns`` (None: all) of table ``name``, rows matching ``filter``; ``version``:
        Delta time travel. Without Spark and without the whole table in memory: the delta-rs / pyarrow dataset
        scanner with the filter and columns pushed down, at most one row group per file being decoded. Batches
        come in the table's file order, which is stable for a given table version."""
        import pyarrow.dataset as ds

        if self.format == "delta":
            from deltalake import DeltaTable

            dataset = DeltaTable(str(self.path(name)), version=version).to_pyarrow_dataset()
        else:
            if version is not None:
                raise ValueError("time travel (version) needs lakehouse.format=delta")
            dataset = ds.dataset(str(self.path(name)), format="parquet")
        # No read-ahead beyond one batch per file: the default (16 batches x 4 files) would hold far more than
        # the batch the caller asked for.
        yield from dataset.to_batches(columns=columns, filter=filter, batch_size=batch_rows, batch_readahead=1,
                                      fragment_readahead=1)

    def scan_frame(self, name: str, columns: list[str] | None = None, filter: "pc.Expression | None" = None,
                   keep: Callable[[pa.RecordBatch], pa.Array] | None = None) -> "pd.DataFrame":
        """``columns`` (None: all) of the rows of ``name`` matching ``filter`` and the per-batch mask ``keep``
        (a function of a record batch giving a boolean array) as one pandas frame, streamed with
        ``scan_batches``: only the matching rows are held. An empty frame of the table's schema (those columns)
        when none match."""
        batches = [b.filter(keep(b)) if keep else b for b in self.scan_batches(name, columns, filter=filter)]
        if batches:
            return pa.Table.from_batches(batches).to_pandas()
        empty = spec(name).schema.empty_table()
        return (empty.select(columns) if columns else empty).to_pandas()

    def version(self, name: str) -> int | None:
        """Current Delta version (None for parquet or a missing table)."""
        if self.format != "delta" or not self.exists(name):
            return None
        from deltalake import DeltaTable

        return DeltaTable(str(self.path(name))).version()

    def versions(self) -> dict[str, int | None]:
        return {n: self.version(n) for n in TABLES if self.exists(n)}


def _spark_schema(schema: pa.Schema):
    """Arrow -> Spark StructType for the few types the canonical tables use."""
    from pyspark.sql import types as T

    def conv(t: pa.DataType):
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return T.StringType()
        if pa.types.is_int32(t):
            return T.IntegerType()
        if pa.types.is_int64(t):
            return T.LongType()
        if pa.types.is_float64(t):
            return T.DoubleType()
        if pa.types.is_float32(t):
            return T.FloatType()
        if pa.types.is_boolean(t):
            return T.BooleanType()
        if pa.types.is_timestamp(t):
            return T.TimestampNTZType() if t.tz is None else T.TimestampType()
        if pa.types.is_date32(t):
            return T.DateType()
        if pa.types.is_map(t):
            return T.MapType(conv(t.key_type), conv(t.item_type), True)
        if pa.types.is_list(t):
            return T.ArrayType(conv(t.value_type), True)
        raise TypeError(f"no Spark type for {t}")

    return T.StructType([T.StructField(f.name, conv(f.type), True) for f in schema])
