"""Streaming reads of a lakehouse table in record batches, without Spark and without the whole table in memory.

``Lakehouse.read_arrow`` materialises a table; a stage that walks a catalog of any size instead reads it here,
one bounded batch at a time (delta-rs / pyarrow dataset scanner with the filter and columns pushed down, at
most one row group per file being decoded). Batches come in the table's file order, which is stable for a
given table version.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow.compute as pc

    from strata.tables import Lakehouse

# Rows per record batch handed to the caller (the scanner may return fewer).
BATCH_ROWS = 4096


def scan_batches(lakehouse: "Lakehouse", name: str, columns: list[str], filter: "pc.Expression | None" = None,
                 batch_rows: int = BATCH_ROWS, version: int | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` of table ``name`` (rows matching ``filter``); ``version``: Delta time travel."""
    import pyarrow.dataset as ds

    if lakehouse.format == "delta":
        from deltalake import DeltaTable

        dataset = DeltaTable(str(lakehouse.path(name)), version=version).to_pyarrow_dataset()
    else:
        if version is not None:
            raise ValueError("time travel (version) needs lakehouse.format=delta")
        dataset = ds.dataset(str(lakehouse.path(name)), format="parquet")
    # No read-ahead beyond one batch per file: the default (16 batches x 4 files) would hold far more than
    # the batch the caller asked for.
    yield from dataset.to_batches(columns=columns, filter=filter, batch_size=batch_rows, batch_readahead=1,
                                  fragment_readahead=1)
