"""Synthetic enlarged inputs built from real rows (``../shared/data``), for memory and scaling checks.

``write_bestbuy_lakehouse``: the real Best Buy small catalog (874 products with categories, brands and
descriptions), its real category tree and its real search log, with the products replicated to ``products``
rows under new ids (``<sku>~<k>``). Each replica's description is the product's own real description followed
by the real descriptions of other catalog products until it is ``desc_chars`` long, so the table can be made
large in bytes (the thing a full-table-in-memory stage chokes on) while every text stays distinct (an
embedding cache cannot short-cut it). Replica 0 keeps the real id, so the real clicks still land on products.

The table is written with delta-rs in files of ``file_rows`` rows and row groups of ``group_rows`` rows: a
scan can then hold one row group at a time, as it can on a Spark-written table of realistic size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from strata.tables import spec


def _bestbuy(data_root: Path):
    from strata.sources.bestbuy_small import load_bestbuy_small

    return load_bestbuy_small(Path(data_root) / "bestbuy-small").tables


def replicate_products(base: pd.DataFrame, n: int, desc_chars: int = 0, seed: int = 13):
    """Yield ``n`` products (pandas chunks of up to 1000 rows) replicated from ``base`` with new ids."""
    base = base.sort_values("product_id").reset_index(drop=True)
    descs = [d or "" for d in base["description"]]
    rng = np.random.default_rng(seed)
    m = len(base)
    for start in range(0, n, 1000):
        rows = []
        for i in range(start, min(n, start + 1000)):
            k, j = divmod(i, m)
            r = base.iloc[j]
            text = descs[j]
            if desc_chars:
                parts = [text]
                size = len(text)
                while size < desc_chars:
                    extra = descs[int(rng.integers(m))]
                    parts.append(extra)
                    size += len(extra) + 1
                text = " ".join(parts)[:desc_chars]
            pid = r["product_id"] if k == 0 else f"{r['product_id']}~{k}"
            rows.append({**r.to_dict(), "product_id": pid, "description": text or None})
        yield pd.DataFrame(rows)


def write_table(root: Path, name: str, frames, file_rows: int = 2000, group_rows: int = 1000) -> int:
    """Write pandas chunks to a Delta table ``root/name`` with bounded files and row groups; returns rows."""
    from deltalake import WriterProperties, write_deltalake

    schema = spec(name).schema
    n, buf = 0, []
    props = WriterProperties(max_row_group_size=group_rows)

    def flush(parts, mode):
        t = pa.concat_tables([pa.Table.from_pandas(p[schema.names], schema=schema, preserve_index=False)
                              for p in parts])
        write_deltalake(str(root / name), t, mode=mode, writer_properties=props)

    mode = "overwrite"
    for f in frames:
        buf.append(f)
        n += len(f)
        if sum(len(b) for b in buf) >= file_rows:
            flush(buf, mode)
            mode, buf = "append", []
    if buf or mode == "overwrite":
        flush(buf or [pd.DataFrame(columns=schema.names)], mode)
    return n


def write_bestbuy_lakehouse(root: Path, data_root: Path, products: int, desc_chars: int = 0,
                            events: int | None = None, file_rows: int = 2000, group_rows: int = 1000
                            ) -> dict[str, int]:
    """A lakehouse with ``products`` replicated Best Buy products, the real taxonomy and search log."""
    from strata.ingest.upsert import dedupe_keys

    root = Path(root)
    bb = {name: dedupe_keys(name, t) for name, t in _bestbuy(data_root).items()}  # one row per key, as ingest
    counts = {"products": write_table(root, "products", replicate_products(bb["products"], products, desc_chars),
                                      file_rows=file_rows, group_rows=group_rows)}
    ev = bb["search_events"].sort_values("event_id").reset_index(drop=True)
    if events is not None:
        ev = ev.iloc[:events]
    counts["search_events"] = write_table(root, "search_events", [ev], file_rows=50_000, group_rows=10_000)
    counts["taxonomy"] = write_table(root, "taxonomy", [bb["taxonomy"]], file_rows=50_000, group_rows=10_000)
    return counts
