"""Data tour: what is in a lakehouse, what was quarantined and why, and how the search log's queries split
into head / torso / tail and zero-click."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from strata.evaluate.slices import ZERO_CLICK_HEAVY
from strata.tables import TABLES, Lakehouse

SEGMENTS = ("head", "torso", "tail")


def _rows(lakehouse: Lakehouse, name: str) -> int:
    """Row count from the Delta log's per-file stats (no data read); falls back to reading one column."""
    path = lakehouse.path(name)
    if lakehouse.format == "delta":
        from deltalake import DeltaTable

        dt = DeltaTable(str(path))
        try:
            acts = dt.get_add_actions(flatten=True)
            n = acts.column("num_records").to_pylist()
            if n and all(x is not None for x in n):
                return int(sum(n))
        except Exception:  # noqa: BLE001 - stats missing: count instead
            pass
        return dt.to_pyarrow_table().num_rows
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in Path(path).glob("*.parquet"))


def table_counts(lakehouse: Lakehouse) -> pd.DataFrame:
    """One row per existing canonical table: rows, Delta version, what the table is."""
    rows = []
    for name, spec in TABLES.items():
        if not lakehouse.exists(name):
            continue
        rows.append({"table": name, "rows": _rows(lakehouse, name), "version": lakehouse.version(name),
                     "doc": spec.doc})
    return pd.DataFrame(rows, columns=["table", "rows", "version", "doc"])


def ingest_summary(ingest_log: pd.DataFrame) -> pd.DataFrame:
    """Per (source, table): records read / accepted / quarantined over all runs, and the quarantine rate."""
    cols = ["source", "target_table", "runs", "read", "accepted", "quarantined", "quarantine_rate"]
    if ingest_log.empty:
        return pd.DataFrame(columns=cols)
    g = ingest_log.groupby(["source", "target_table"], as_index=False).agg(
        runs=("run_id", "nunique"), read=("read", "sum"), accepted=("accepted", "sum"),
        quarantined=("quarantined", "sum"))
    g["quarantine_rate"] = (g["quarantined"] / g["read"].where(g["read"] > 0)).fillna(0.0)
    return g[cols].sort_values(["source", "target_table"]).reset_index(drop=True)


_DETAIL = re.compile(r"\s*(\{.*|\(.*|'.*|\".*|\d.*)$")


def reason_kind(reason: str | None) -> str:
    """The kind of a quarantine reason without its row-specific detail ("duplicate key {...} ..." ->
    "duplicate key"; "bad grade: 'x'" -> "bad grade")."""
    if not reason:
        return "(none)"
    head = str(reason).split(":", 1)[0]
    head = _DETAIL.sub("", head).strip()
    return head or str(reason)[:40]


def quarantine_summary(quarantine: pd.DataFrame, examples: int = 1) -> pd.DataFrame:
    """Quarantined rows per (source, table, reason kind), most first, with an example reason."""
    cols = ["source", "target_table", "reason_kind", "rows", "example"]
    if quarantine.empty:
        return pd.DataFrame(columns=cols)
    q = quarantine.assign(reason_kind=quarantine["reason"].map(reason_kind))
    g = q.groupby(["source", "target_table", "reason_kind"], as_index=False).agg(
        rows=("reason", "size"), example=("reason", lambda s: " | ".join(s.head(examples))))
    return g[cols].sort_values("rows", ascending=False, kind="stable").reset_index(drop=True)


def label_grades(labels: pd.DataFrame) -> pd.DataFrame:
    """Labelled pairs per source, split and grade (0 irrelevant, 1 partial, 2 exact), and queries."""
    if labels.empty:
        return pd.DataFrame(columns=["source", "split", "queries", "pairs", "grade_0", "grade_1", "grade_2"])
    g = labels.pivot_table(index=["source", "split"], columns="grade", values="product_id", aggfunc="size",
                           fill_value=0)
    g = g.reindex(columns=[0, 1, 2], fill_value=0)
    g.columns = [f"grade_{c}" for c in g.columns]
    q = labels.groupby(["source", "split"]).agg(queries=("query_norm", "nunique"), pairs=("product_id", "size"))
    return q.join(g).reset_index()


def segment_summary(query_stats: pd.DataFrame, heavy: float = ZERO_CLICK_HEAVY) -> pd.DataFrame:
    """Per source and head/torso/tail segment: distinct queries, searches and their share, clicks, CTR,
    the search-weighted zero-click rate, and the share of queries that are zero-click-heavy
    (``zero_click_rate >= heavy``, the same threshold as the evaluation's zero_click slice)."""
    cols = ["source", "segment", "queries", "searches", "search_share", "clicks", "ctr", "zero_click_rate",
            "zero_click_heavy_share"]
    if query_stats.empty:
        return pd.DataFrame(columns=cols)
    qs = query_stats.copy()
    qs["searches"] = qs["searches"].fillna(0)
    qs["clicks"] = qs["clicks"].fillna(0)
    qs["_zc_w"] = qs["zero_click_rate"] * qs["searches"]
    qs["_zc_n"] = qs["searches"].where(qs["zero_click_rate"].notna(), 0)
    qs["_heavy"] = (qs["zero_click_rate"] >= heavy).astype(float).where(qs["zero_click_rate"].notna())
    g = qs.groupby(["source", "segment"], as_index=False).agg(
        queries=("query_norm", "nunique"), searches=("searches", "sum"), clicks=("clicks", "sum"),
        _zc_w=("_zc_w", "sum"), _zc_n=("_zc_n", "sum"), zero_click_heavy_share=("_heavy", "mean"))
    tot = g.groupby("source")["searches"].transform("sum")
    g["search_share"] = (g["searches"] / tot.where(tot > 0)).fillna(0.0)
    g["ctr"] = g["clicks"] / g["searches"].where(g["searches"] > 0)
    g["zero_click_rate"] = g["_zc_w"] / g["_zc_n"].where(g["_zc_n"] > 0)
    order = {s: i for i, s in enumerate(SEGMENTS)}
    g = g.sort_values(["source", "segment"], key=lambda s: s.map(order) if s.name == "segment" else s)
    return g[cols].reset_index(drop=True)


def zero_click_queries(query_stats: pd.DataFrame, n: int = 20, heavy: float = ZERO_CLICK_HEAVY,
                       min_searches: int = 1) -> pd.DataFrame:
    """The most searched zero-click-heavy queries: where shoppers search and do not click."""
    cols = ["source", "query_norm", "segment", "searches", "clicks", "zero_click_rate"]
    if query_stats.empty:
        return pd.DataFrame(columns=cols)
    m = query_stats[(query_stats["zero_click_rate"] >= heavy) & (query_stats["searches"] >= min_searches)]
    return (m.sort_values(["searches", "zero_click_rate", "query_norm"], ascending=[False, False, True])
            [cols].head(n).reset_index(drop=True))


def read(lakehouse: Lakehouse, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A table as pandas (delta-rs, no Spark, streamed: ``Lakehouse.scan_frame``), or an empty frame with the
    table's columns when absent."""
    from strata.tables import empty_frame

    if not lakehouse.exists(name):
        frame = empty_frame(name)
        return frame[columns] if columns else frame
    return lakehouse.scan_frame(name, columns)
