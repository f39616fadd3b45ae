"""The ``vllm`` judge: a generative LLM on GPU workers through ``ray.data.llm``, scored by grade-token logprobs.

Thin by design: ``processor_config`` builds the ``vLLMEngineProcessorConfig``, ``preprocess`` turns a candidate
row into the shared guideline prompt (``judge.prompt``) + sampling params (one generated token, top-k logprobs),
and ``postprocess`` maps the first generated token's logprobs to P(0), P(1), P(2) and a grade with the same
``probs_from_logprobs`` as the openai backend, never parsing free text. ``build_processor`` wires them with
``ray.data.llm.build_processor``; ``judged_frames`` runs it over a Ray dataset of candidates and yields
judgment rows, which ``job.run_judging`` MERGEs per chunk like every other backend's.

The engine runs with ``should_continue_on_error``: a row vLLM fails on comes back with Ray's
``__inference_error__`` set and skips ``postprocess``; ``judgment_frame`` turns it into an ``error:backend``
row (no grade), which the next run retries. vLLM itself is imported only by Ray's engine stage on the GPU
workers, never here.
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from strata.judge.prompt import GUIDELINE_VERSION, guideline_id, messages, probs_from_logprobs
from strata.judge.protocol import BACKEND_ERROR, SCORED, JudgeInput, JudgeOutput, prepare

TOP_LOGPROBS = 20
ENGINE_ERROR = "__inference_error__"  # Ray Data LLM's column for a row the engine failed on
VERDICT_COLUMNS = ("source", "query_norm", "query", "product_id", "judge_id", "judge_version", "grade",
                   "p0", "p1", "p2", "status", "error")


def judge_identity(model: str, guideline_version: str = GUIDELINE_VERSION) -> tuple[str, str]:
    version = f"{guideline_id(guideline_version)}+{model}"
    return f"vllm-{model.split('/')[-1]}@{hashlib.sha1(version.encode()).hexdigest()[:12]}", version


def sampling_params() -> dict[str, Any]:
    """One greedy token; its top logprobs carry the grade distribution (vLLM ``SamplingParams`` fields)."""
    return {"max_tokens": 1, "temperature": 0.0, "logprobs": TOP_LOGPROBS, "detokenize": True}


def engine_kwargs(over: dict[str, Any] | None = None) -> dict[str, Any]:
    kw = {"max_model_len": 2048, "enable_prefix_caching": True, **(over or {})}  # the guideline is a shared prefix
    kw["max_logprobs"] = max(int(kw.get("max_logprobs") or 0), TOP_LOGPROBS)  # vLLM refuses more than this
    return kw


def config_kwargs(cfg: Any) -> dict[str, Any]:
    """``vLLMEngineProcessorConfig`` arguments for a ``JudgeConfig``: ``actors`` engine replicas, ``batch_size``
    rows per engine call."""
    kw: dict[str, Any] = {
        "model_source": cfg.model,
        "engine_kwargs": engine_kwargs(cfg.vllm_engine_kwargs),
        "batch_size": cfg.batch_size,
        "concurrency": cfg.actors,
        # A failing row becomes an error row (retried by the next run) instead of failing the whole job.
        "should_continue_on_error": True,
        "chat_template_stage": True,
        "tokenize_stage": True,
        "detokenize_stage": True,
    }
    if cfg.accelerator_type:
        kw["accelerator_type"] = cfg.accelerator_type
    return kw


def processor_config(cfg: Any):
    from ray.data.llm import vLLMEngineProcessorConfig

    return vLLMEngineProcessorConfig(**config_kwargs(cfg))


def preprocess(row: dict[str, Any], guideline_version: str = GUIDELINE_VERSION) -> dict[str, Any]:
    p = prepare(JudgeInput(row.get("query") or "", row.get("product_text") or "", row.get("category")))
    out = {**row, "judge_status": p.status, "judge_error": p.error}
    if p.status not in SCORED:
        # The engine still needs a prompt; the row keeps its error status and postprocess ignores the output.
        out["messages"] = [{"role": "user", "content": "0"}]
    else:
        out["messages"] = messages(p, guideline_version)
    out["sampling_params"] = sampling_params()
    return out


def _first_token_top(logprobs: Any) -> dict[str, float] | None:
    """The first generated token's {decoded token: logprob} from Ray's vLLM output row: ``logprobs`` is one
    {token_id: {logprob, rank, decoded_token}} per generated token."""
    if logprobs is None or len(logprobs) == 0:
        return None
    first = logprobs[0]
    if first is None:
        return None
    top: dict[str, float] = {}
    values = first.values() if isinstance(first, dict) else first
    for info in values:
        if info is None:
            continue
        tok = info.get("decoded_token") if isinstance(info, dict) else getattr(info, "decoded_token", None)
        lp = info.get("logprob") if isinstance(info, dict) else getattr(info, "logprob", None)
        if tok is not None and lp is not None:
            top[str(tok)] = max(float(lp), top.get(str(tok), float("-inf")))
    return top


def postprocess(row: dict[str, Any], judge_id: str, version: str) -> dict[str, Any]:
    keep = {k: row.get(k) for k in ("source", "query", "query_norm", "product_id") if k in row}
    status, error = row.get("judge_status", "ok"), row.get("judge_error")
    probs = None
    if status in SCORED:
        probs = probs_from_logprobs(_first_token_top(row.get("logprobs")))
        if probs is None:  # as the openai backend: an answer without a grade token is a failure, not a grade
            status, error = BACKEND_ERROR, "no grade token among the first token's top logprobs"
    p = probs if probs is not None else np.full(3, np.nan)
    return {**keep, "judge_id": judge_id, "judge_version": version,
            "grade": int(np.argmax(p)) if probs is not None else -1,
            "p0": float(p[0]), "p1": float(p[1]), "p2": float(p[2]), "status": status, "error": error}


def build_processor(cfg: Any, build: Callable[..., Any] | None = None):
    """A Ray Data LLM processor: ``processor(ds)`` maps candidate rows to judgment rows on GPU workers.

    ``build`` defaults to ``ray.data.llm.build_processor`` (tests pass one whose engine stage is a stand-in)."""
    if build is None:
        from ray.data.llm import build_processor as build
    judge_id, version = judge_identity(cfg.model, cfg.guideline)
    return build(processor_config(cfg), preprocess=partial(preprocess, guideline_version=cfg.guideline),
                 postprocess=partial(postprocess, judge_id=judge_id, version=version))


def judgment_frame(out: pd.DataFrame, judge_id: str, version: str) -> pd.DataFrame:
    """Processor output -> the judgment columns. A row the engine failed on skipped postprocess (Ray hands back
    its raw data): it gets its input error if it had one, else ``error:backend`` with the engine's message."""
    df = out.reindex(columns=[*VERDICT_COLUMNS, ENGINE_ERROR, "judge_status", "judge_error"]).copy()
    failed = (df[ENGINE_ERROR].fillna("").astype(str) != "").to_numpy()
    if failed.any():
        in_status = df["judge_status"].where(df["judge_status"].notna() & ~df["judge_status"].isin(SCORED))
        bad_input = failed & in_status.notna().to_numpy()
        engine = failed & ~bad_input
        df.loc[bad_input, "status"] = in_status[bad_input]
        df.loc[bad_input, "error"] = df.loc[bad_input, "judge_error"]
        df.loc[engine, "status"] = BACKEND_ERROR
        df.loc[engine, "error"] = ("vLLM engine: " + df.loc[engine, ENGINE_ERROR].astype(str)).str.slice(0, 500)
        df.loc[failed, ["judge_id", "judge_version"]] = [judge_id, version]
        df.loc[failed, ["p0", "p1", "p2"]] = np.nan
        df.loc[failed, "grade"] = -1
    df["grade"] = pd.to_numeric(df["grade"]).fillna(-1).astype("int64")
    for c in ("p0", "p1", "p2"):
        df[c] = pd.to_numeric(df[c]).astype("float64")
    return df[list(VERDICT_COLUMNS)].reset_index(drop=True)


def judged_frames(ds: Any, cfg: Any, build: Callable[..., Any] | None = None) -> Iterator[pd.DataFrame]:
    """Judgment rows for a Ray dataset of candidates (``job.CANDIDATE_COLUMNS``), a block at a time."""
    judge_id, version = judge_identity(cfg.model, cfg.guideline)
    for batch in build_processor(cfg, build)(ds).iter_batches(batch_format="pandas", batch_size=None):
        yield judgment_frame(batch, judge_id, version)


class VLLMJudge:
    """The ``Judge`` protocol over the processor, for callers holding a list (``strata judge calibrate``). Each
    call is one Ray Data job and one engine start: hand it every pair at once. ``run_judging`` does not use it:
    it feeds the processor the candidates dataset directly."""

    def __init__(self, cfg: Any, build: Callable[..., Any] | None = None):
        self.cfg, self.build = cfg, build
        self.judge_id, self.version = judge_identity(cfg.model, cfg.guideline)

    def judge(self, batch: Sequence[JudgeInput]) -> list[JudgeOutput]:
        import ray

        if not batch:
            return []
        rows = [{"source": "", "query": r.query, "query_norm": "", "product_id": str(i),
                 "product_text": r.product_text, "category": r.category or ""} for i, r in enumerate(batch)]
        out = pd.concat(list(judged_frames(ray.data.from_items(rows), self.cfg, self.build)), ignore_index=True)
        by_row = out.set_index("product_id")
        res = []
        for i in range(len(batch)):
            r = by_row.loc[str(i)]
            scored = r["status"] in SCORED
            res.append(JudgeOutput(int(r["grade"]) if scored else None,
                                   (float(r["p0"]), float(r["p1"]), float(r["p2"])) if scored else None,
                                   self.judge_id, self.version, str(r["status"]),
                                   None if pd.isna(r["error"]) else str(r["error"])))
        return res
