"""The judging job: candidates (Delta) -> Ray Data actor pool -> ``judgments``, resumable and idempotent.

Candidates already judged by this judge id are anti-joined away first; the rest stream through a Ray Data
``map_batches`` actor pool (the judge loads once per actor) and the results are MERGEd into ``judgments``
(keys query_norm, product_id, judge_id) every ``chunk_rows`` rows. A killed run therefore loses at most the
rows judged since the last MERGE, and a restart judges only what is missing; MERGE on the keys means a pair
can never be written twice. Throughput is logged per chunk and in the returned summary.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from strata.judge.backends import JudgeConfig, judge_identity, load_judge
from strata.judge.protocol import JudgeInput
from strata.tables import Lakehouse
from strata.text import normalize_query

log = logging.getLogger(__name__)

CANDIDATE_COLUMNS = ("source", "query", "query_norm", "product_id", "product_text", "category")


def read_candidates(path_or_table: str | Path | pa.Table | pd.DataFrame) -> pd.DataFrame:
    """A candidates Delta table (or frame): needs query, product_id and product_text (or title).

    Optional: source, query_norm (derived from query when absent), category. One row per
    (query_norm, product_id), the first seen. From a path, only those columns are read.
    """
    if isinstance(path_or_table, pd.DataFrame):
        df = path_or_table.copy()
    elif isinstance(path_or_table, pa.Table):
        df = path_or_table.to_pandas()
    else:
        df = _read_candidate_columns(Path(path_or_table))
    if "product_text" not in df.columns:
        if "title" not in df.columns:
            raise ValueError("candidates need a product_text or title column")
        desc = df["description"] if "description" in df.columns else pd.Series([None] * len(df), index=df.index)
        df["product_text"] = [" ".join(x for x in (t, d) if isinstance(x, str) and x).strip()
                              for t, d in zip(df["title"], desc)]
    for col in ("query", "product_id"):
        if col not in df.columns:
            raise ValueError(f"candidates need a {col!r} column (have {list(df.columns)})")
    if "query_norm" not in df.columns:
        df["query_norm"] = [normalize_query(q) for q in df["query"]]
    if "source" not in df.columns:
        df["source"] = None
    if "category" not in df.columns:
        df["category"] = None
    df["product_id"] = df["product_id"].astype(str)
    df["query_norm"] = df["query_norm"].fillna("").astype(str)
    df = df[list(CANDIDATE_COLUMNS)].drop_duplicates(subset=["query_norm", "product_id"], keep="first")
    return df.reset_index(drop=True)


def _read_candidate_columns(p: Path) -> pd.DataFrame:
    """The columns ``read_candidates`` uses of a candidates Delta table or parquet file/folder: the
    ``CANDIDATE_COLUMNS`` it has, plus title/description only when it has no product_text. Other columns
    (e.g. a retriever's vectors or scores) are never read."""
    import pyarrow.dataset as ds

    if (p / "_delta_log").is_dir():
        from deltalake import DeltaTable

        dataset = DeltaTable(str(p)).to_pyarrow_dataset()
    else:
        # as pq.read_table(path): a file or a folder of files, hive partition columns included
        dataset = ds.dataset(str(p), format="parquet", partitioning="hive")
    names = dataset.schema.names
    if not {"query", "product_id"} <= set(names) or not {"product_text", "title"} & set(names):
        # not a candidates table: no rows needed for read_candidates' error (which lists every column)
        return dataset.schema.empty_table().to_pandas()
    cols = [c for c in CANDIDATE_COLUMNS if c in names]
    if "product_text" not in names:
        cols += [c for c in ("title", "description") if c in names]
    return dataset.to_table(columns=cols).to_pandas()


def _value_set(values: pd.Series) -> pa.Array | None:
    """The distinct ``values`` as a string value set for a push-down ``isin`` (None when they are not all
    strings/nulls, e.g. a caller's integer ids: then the filter is left to the merge)."""
    try:
        return pa.array(pd.unique(values), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def missing_pairs(lakehouse: Lakehouse, candidates: pd.DataFrame, judge_id: str) -> pd.DataFrame:
    """Candidates without a judgment by ``judge_id`` yet (the resume point).

    Reads only (query_norm, product_id) of the ``judgments`` rows of ``judge_id`` whose query_norm and
    product_id occur among the candidates (pushed down to the scan), not the table's whole history.
    """
    import pyarrow.compute as pc

    from strata.embed.scan import scan_batches

    if not lakehouse.exists("judgments"):
        return candidates
    flt = pc.field("judge_id") == judge_id
    for col in ("query_norm", "product_id"):
        vs = _value_set(candidates[col])
        if vs is not None:
            flt = flt & pc.field(col).isin(vs)
    cols = ["query_norm", "product_id"]
    batches = [b for b in scan_batches(lakehouse, "judgments", cols, filter=flt) if b.num_rows]
    if not batches:
        return candidates
    done = pa.Table.from_batches(batches).to_pandas()
    m = candidates.merge(done.assign(_done=True), on=["query_norm", "product_id"], how="left")
    return candidates[m["_done"].isna().to_numpy()].reset_index(drop=True)


def _inputs(batch: dict[str, Any]) -> list[JudgeInput]:
    cats = batch.get("category")
    n = len(batch["query"])
    return [
        JudgeInput(
            query=batch["query"][i] if batch["query"][i] is not None else "",
            product_text=batch["product_text"][i] if batch["product_text"][i] is not None else "",
            category=(cats[i] if cats is not None and isinstance(cats[i], str) else None),
        )
        for i in range(n)
    ]


def judge_frame(judge: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """Score one batch (column dict) with ``judge``; the judgment columns, in row order."""
    outs = judge.judge(_inputs(batch))
    probs = np.array([o.probs if o.probs is not None else (np.nan,) * 3 for o in outs], dtype=np.float64)
    probs = probs.reshape(len(outs), 3)
    return {
        "source": np.asarray(batch["source"], dtype=object),
        "query_norm": np.asarray(batch["query_norm"], dtype=object),
        "query": np.asarray(batch["query"], dtype=object),
        "product_id": np.asarray(batch["product_id"], dtype=object),
        "judge_id": np.array([o.judge_id for o in outs], dtype=object),
        "judge_version": np.array([o.judge_version for o in outs], dtype=object),
        "grade": np.array([o.grade if o.grade is not None else -1 for o in outs], dtype=np.int64),
        "p0": probs[:, 0], "p1": probs[:, 1], "p2": probs[:, 2],
        "status": np.array([o.status for o in outs], dtype=object),
        "error": np.array([o.error for o in outs], dtype=object),
    }


class JudgeBatches:
    """Ray Data actor: builds the judge once, then scores each batch."""

    def __init__(self, cfg: dict[str, Any], threads: int) -> None:
        self.judge = load_judge(cfg, threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return judge_frame(self.judge, batch)


def _to_rows(res: dict[str, Any] | pd.DataFrame, run_id: str) -> pd.DataFrame:
    df = pd.DataFrame(res) if not isinstance(res, pd.DataFrame) else res
    df = df.copy()
    df["grade"] = df["grade"].astype("Int64").where(df["grade"] >= 0, pd.NA)
    df["run_id"] = run_id
    df["judged_at"] = pd.Timestamp(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).floor("us")
    return df


def run_judging(
    engines: Any,
    lakehouse: Lakehouse,
    candidates: pd.DataFrame,
    cfg: JudgeConfig,
    run_id: str,
    use_ray: bool = True,
    writer: Callable[[pd.DataFrame], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Judge every candidate not yet judged by this judge; MERGE results into ``judgments`` per chunk."""
    from strata.ingest.upsert import upsert

    judge_id, version = judge_identity(cfg)
    total = len(candidates)
    todo = missing_pairs(lakehouse, candidates, judge_id)
    n = len(todo)
    log.info("judge %s: %d candidates, %d already judged, %d to judge", judge_id, total, total - n, n)
    summary: dict[str, Any] = {"judge_id": judge_id, "judge_version": version, "candidates": total,
                               "already_judged": total - n, "judged": 0, "errors": 0, "run_id": run_id}
    if n == 0:
        summary.update(seconds=0.0, pairs_per_s=0.0, scoring_seconds=0.0)
        return summary

    def write(part: pd.DataFrame) -> None:
        if writer is not None:
            writer(part)
        else:
            upsert(engines.spark, lakehouse, "judgments", _to_rows(part, run_id))

    t0 = time.perf_counter()
    pending: list[pd.DataFrame] = []
    pending_rows, done, errors, write_secs = 0, 0, 0, 0.0

    def flush() -> None:
        nonlocal pending, pending_rows, done, errors, write_secs
        if not pending:
            return
        part = pd.concat(pending, ignore_index=True)
        tw = time.perf_counter()
        write(part)
        write_secs += time.perf_counter() - tw
        done += len(part)
        errors += int((~part["status"].isin(["ok", "truncated"])).sum())
        pending, pending_rows = [], 0
        el = time.perf_counter() - t0
        log.info("judge %s: %d/%d pairs judged (%.1f pairs/s)", judge_id, done, n, done / max(el, 1e-9))
        if progress:
            progress(done, n)

    if use_ray:
        from strata.embed.ray_embed import _node_cpus, torch_threads

        ray = engines.ray()
        # Shortest texts first: batches pad little (as in ray_embed); blocks of a few batches each.
        order = np.argsort(todo["product_text"].fillna("").str.len().to_numpy(), kind="stable")
        todo = todo.iloc[order].reset_index(drop=True)
        block_rows = cfg.batch_size * 4
        blocks = [pa.Table.from_pandas(todo.iloc[s : s + block_rows], preserve_index=False)
                  for s in range(0, n, block_rows)]
        ds = ray.data.from_arrow(blocks).map_batches(
            JudgeBatches,
            fn_constructor_kwargs={"cfg": cfg.model_dump(),
                                   "threads": torch_threads(cfg.actor_cpus, cfg.actors, _node_cpus(ray))},
            batch_size=cfg.batch_size, batch_format="numpy", concurrency=cfg.actors,
            num_cpus=cfg.actor_cpus, num_gpus=cfg.actor_gpus or None,
        )
        for batch in ds.iter_batches(batch_format="pandas", batch_size=None):
            pending.append(batch)
            pending_rows += len(batch)
            if pending_rows >= cfg.chunk_rows:
                flush()
    else:
        judge = load_judge(cfg)
        for s in range(0, n, cfg.batch_size):
            part = todo.iloc[s : s + cfg.batch_size]
            res = judge_frame(judge, {c: part[c].to_numpy(dtype=object) for c in part.columns})
            pending.append(pd.DataFrame(res))
            pending_rows += len(part)
            if pending_rows >= cfg.chunk_rows:
                flush()
    flush()
    secs = time.perf_counter() - t0
    summary.update(judged=done, errors=errors, seconds=round(secs, 2),
                   pairs_per_s=round(done / max(secs, 1e-9), 2),
                   write_seconds=round(write_secs, 2),
                   scoring_pairs_per_s=round(done / max(secs - write_secs, 1e-9), 2))
    log.info("judge %s: %d pairs in %.1fs (%.1f pairs/s, %.1fs writing)", judge_id, done, secs,
             summary["pairs_per_s"], write_secs)
    return summary
