"""The judging job: candidates (Delta) -> Ray Data actor pool -> ``judgments``, resumable and idempotent.

Candidates already judged by this judge id are anti-joined away first; the rest stream through a Ray Data
``map_batches`` actor pool (the judge loads once per actor) and the results are MERGEd into ``judgments``
(keys query_norm, product_id, judge_id) every ``chunk_rows`` rows. A killed run therefore loses at most the
rows judged since the last MERGE, and a restart judges only what is missing; MERGE on the keys means a pair
can never be written twice. Throughput is logged per chunk and in the returned summary.

A row the judge itself failed on (``error:backend``: endpoint down, timeout, engine error) is written with that
status but is not a verdict: the resume judges it again, and a run whose share of such rows passes
``judge.max_error_share`` raises ``JudgeFailures`` after writing what it judged. The ``vllm`` backend runs
as a ``ray.data.llm`` processor over the same candidates (``judge.vllm_backend``), not through the actors.

Two ways in: a frame of candidates (``read_candidates``; what the mining job and small runs pass), or the
path of a candidates table. A path never comes through the driver: Spark normalises and de-duplicates the
candidates, anti-joins this judge's judgments and stages what is left as parquet, which Ray Data streams to
the actors (``stage_candidates``; the catalog-scale path: 100M candidates with text are ~25 GB).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from strata.judge.backends import judge_identity, load_judge
from strata.judge.config import JudgeConfig
from strata.judge.protocol import RETRIED, SCORED, JudgeInput
from strata.judge.staging import CANDIDATE_COLUMNS, Todo, stage_candidates  # noqa: F401 - re-exported
from strata.ship import Shipped, here, ship
from strata.storage import rmtree
from strata.tables import Lakehouse
from strata.text import normalize_query, product_text

log = logging.getLogger(__name__)


class JudgeFailures(RuntimeError):
    """The judge failed on more of a run's pairs than ``judge.max_error_share`` allows. Raised after the run
    wrote everything (verdicts and failures); ``summary`` is the run's summary. The next run retries them."""

    def __init__(self, summary: dict[str, Any]):
        self.summary = summary
        super().__init__(
            f"judge {summary['judge_id']}: failed on {summary['failed']} of {summary['judged']} pairs "
            f"(error:backend; share {summary['error_share']:.4f} > max_error_share {summary['max_error_share']}); "
            f"{summary['input_errors']} more had unusable input. The failed pairs stay unjudged: rerun to retry them")


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
        df["product_text"] = [product_text(t if isinstance(t, str) else None, d if isinstance(d, str) else None)
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
    """Candidates without a verdict by ``judge_id`` yet (the resume point): no row, or a row the judge failed on
    (status in ``RETRIED``). An ok verdict, or an input error on the text as given, is never judged again.

    Reads only (query_norm, product_id) of the ``judgments`` rows of ``judge_id`` whose query_norm and
    product_id occur among the candidates (pushed down to the scan), not the table's whole history.
    """
    import pyarrow.compute as pc

    if not lakehouse.exists("judgments"):
        return candidates
    flt = (pc.field("judge_id") == judge_id) & (pc.field("status").is_null()
                                                | ~pc.field("status").isin(list(RETRIED)))
    for col in ("query_norm", "product_id"):
        vs = _value_set(candidates[col])
        if vs is not None:
            flt = flt & pc.field(col).isin(vs)
    cols = ["query_norm", "product_id"]
    batches = [b for b in lakehouse.scan_batches("judgments", cols, filter=flt) if b.num_rows]
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

    def __init__(self, cfg: dict[str, Any], threads: int, model: "Shipped | str | None" = None) -> None:
        if model is not None:  # the judge's folder, through the object store when this node lacks it
            cfg = {**cfg, "model": here(model)}
        self.judge = load_judge(cfg, threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return judge_frame(self.judge, batch)


def judge_window(cfg: JudgeConfig) -> int:
    """Rows per judge call (both paths): up to 16 batches, never past a MERGE chunk. The judge sorts a call's
    pairs by length and cuts its own batches, so a window pads less than batch-sized calls of random texts."""
    return max(cfg.batch_size, min(cfg.chunk_rows, 16 * cfg.batch_size))


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
    candidates: pd.DataFrame | str | Path,
    cfg: JudgeConfig,
    run_id: str,
    use_ray: bool = True,
    writer: Callable[[pd.DataFrame], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    limit: int | None = None,
    vllm_build: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Judge every candidate not yet judged by this judge; MERGE results into ``judgments`` per chunk.

    ``candidates``: a frame from ``read_candidates``, or a candidates table's path (staged by Spark under
    ``<lakehouse>/_staging/judge-<run_id>``, removed when the run ends; ``limit`` keeps the first N pairs).
    ``vllm_build``: the ``vllm`` backend's processor builder (default ``ray.data.llm.build_processor``).
    Raises ``JudgeFailures`` (after writing) when the judge failed on more than ``cfg.max_error_share``."""
    judge_id, version = judge_identity(cfg)
    if isinstance(candidates, pd.DataFrame):
        frame = candidates.iloc[:limit] if limit else candidates
        todo_frame = missing_pairs(lakehouse, frame, judge_id)
        todo = Todo(total=len(frame), n=len(todo_frame), frame=todo_frame)
    else:
        todo = stage_candidates(engines.spark, lakehouse, candidates, judge_id,
                                lakehouse.staging(f"judge-{run_id}"), limit)
    try:
        summary = _judge_todo(engines, lakehouse, todo, cfg, run_id, judge_id, version, use_ray, writer, progress,
                              vllm_build)
    finally:
        if todo.staging is not None:
            rmtree(todo.staging)
            try:
                todo.staging.parent.rmdir()  # _staging itself, unless another run is staging there
            except OSError:
                pass
    if summary["failed"] > cfg.max_error_share * summary["judged"]:
        raise JudgeFailures(summary)
    return summary


def _verdicts(engines: Any, todo: Todo, cfg: JudgeConfig, use_ray: bool,
              vllm_build: Callable[..., Any] | None) -> Iterator[pd.DataFrame]:
    """The judgment rows of ``todo``, a part at a time, from the path the backend and size call for."""
    window = judge_window(cfg)
    if cfg.backend == "vllm":
        from strata.judge.vllm_backend import judged_frames

        ray = engines.ray()
        yield from judged_frames(todo.ray_dataset(ray, window), cfg, vllm_build)
    elif use_ray:
        from strata.embed.ray_embed import _node_cpus, torch_threads

        ray = engines.ray()
        # Each actor call gets a window of batches, as on the in-process path; the block size matches it so
        # Ray Data does not cut windows across blocks.
        ds = todo.ray_dataset(ray, window).map_batches(
            JudgeBatches,
            fn_constructor_kwargs={"cfg": cfg.model_dump(),
                                   "threads": torch_threads(cfg.actor_cpus, cfg.actors, _node_cpus(ray)),
                                   "model": ship(ray, cfg.model) if cfg.model else None},
            batch_size=window, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=cfg.actors),
            num_cpus=cfg.actor_cpus, num_gpus=cfg.actor_gpus or None,
        )
        yield from ds.iter_batches(batch_format="pandas", batch_size=None)
    else:
        judge = load_judge(cfg)
        # Hand the judge a window of batches at a time: it sorts a call's pairs by length and cuts its own
        # batches (and the grade head encodes each distinct text once per call), so it pads less.
        for part in todo.frames(window):
            yield pd.DataFrame(judge_frame(judge, {c: part[c].to_numpy(dtype=object) for c in part.columns}))


def _judge_todo(engines: Any, lakehouse: Lakehouse, todo: Todo, cfg: JudgeConfig, run_id: str, judge_id: str,
                version: str, use_ray: bool, writer: Callable[[pd.DataFrame], None] | None,
                progress: Callable[[int, int], None] | None,
                vllm_build: Callable[..., Any] | None) -> dict[str, Any]:
    from strata.ingest.upsert import upsert

    total, n = todo.total, todo.n
    log.info("judge %s: %d candidates, %d already judged, %d to judge", judge_id, total, total - n, n)
    summary: dict[str, Any] = {"judge_id": judge_id, "judge_version": version, "candidates": total,
                               "already_judged": total - n, "judged": 0, "errors": 0, "failed": 0,
                               "input_errors": 0, "error_share": 0.0, "max_error_share": cfg.max_error_share,
                               "run_id": run_id}
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
    pending_rows, done, errors, failed, write_secs = 0, 0, 0, 0, 0.0

    def flush() -> None:
        nonlocal pending, pending_rows, done, errors, failed, write_secs
        if not pending:
            return
        part = pd.concat(pending, ignore_index=True)
        tw = time.perf_counter()
        write(part)
        write_secs += time.perf_counter() - tw
        done += len(part)
        errors += int((~part["status"].isin(SCORED)).sum())
        failed += int(part["status"].isin(RETRIED).sum())
        pending, pending_rows = [], 0
        el = time.perf_counter() - t0
        log.info("judge %s: %d/%d pairs judged (%.1f pairs/s, %d failed)", judge_id, done, n,
                 done / max(el, 1e-9), failed)
        if progress:
            progress(done, n)

    use_ray = cfg.backend == "vllm" or (use_ray and not (cfg.backend == "distilled" and n < cfg.ray_min_pairs))
    summary["ray"] = use_ray
    for part in _verdicts(engines, todo, cfg, use_ray, vllm_build):
        pending.append(part)
        pending_rows += len(part)
        if pending_rows >= cfg.chunk_rows:
            flush()
    flush()
    secs = time.perf_counter() - t0
    summary.update(judged=done, errors=errors, failed=failed, input_errors=errors - failed,
                   error_share=round(failed / max(done, 1), 6), seconds=round(secs, 2),
                   pairs_per_s=round(done / max(secs, 1e-9), 2),
                   write_seconds=round(write_secs, 2),
                   scoring_pairs_per_s=round(done / max(secs - write_secs, 1e-9), 2))
    log.info("judge %s: %d pairs in %.1fs (%.1f pairs/s, %.1fs writing); %d failed (retried next run), "
             "%d with unusable input", judge_id, done, secs, summary["pairs_per_s"], write_secs, failed,
             errors - failed)
    return summary
