"""The ``vllm`` judge: a generative LLM on GPU workers through ``ray.data.llm``, scored by grade-token logprobs.

Thin by design (no GPU here): ``processor_config`` builds the ``vLLMEngineProcessorConfig``, ``preprocess``
turns a candidate row into chat messages + sampling params (one generated token, top-k logprobs), and
``postprocess`` maps the first generated token's logprobs to P(0), P(1), P(2) and a grade, never parsing
free text. ``build_processor`` wires them with ``build_llm_processor``. vLLM itself is imported only by
Ray's engine stage on the GPU workers, never at import time here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from strata.judge.prompt import GUIDELINE_VERSION, guideline_id, messages, probs_from_logprobs
from strata.judge.protocol import BACKEND_ERROR, JudgeInput, SCORED, prepare

TOP_LOGPROBS = 20


def judge_identity(model: str, guideline_version: str = GUIDELINE_VERSION) -> tuple[str, str]:
    version = f"{guideline_id(guideline_version)}+{model}"
    return f"vllm-{model.split('/')[-1]}@{hashlib.sha1(version.encode()).hexdigest()[:12]}", version


def sampling_params() -> dict[str, Any]:
    """One greedy token; its top logprobs carry the grade distribution."""
    return {"max_tokens": 1, "temperature": 0.0, "logprobs": TOP_LOGPROBS, "detokenize": True}


def engine_kwargs(max_model_len: int = 2048, **over: Any) -> dict[str, Any]:
    return {"max_model_len": max_model_len, "enable_prefix_caching": True,  # the guideline is a shared prefix
            "max_logprobs": TOP_LOGPROBS, **over}


def processor_config_kwargs(model: str, batch_size: int = 64, concurrency: int = 1,
                            accelerator_type: str | None = None, **engine_over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "model_source": model,
        "engine_kwargs": engine_kwargs(**engine_over),
        "batch_size": batch_size,
        "concurrency": concurrency,
        # Ray >= 2.5x: per-stage configs (the old apply_chat_template/tokenize/detokenize flags are rejected).
        "chat_template_stage": True,
        "tokenize_stage": True,
        "detokenize_stage": True,
    }
    if accelerator_type:
        kw["accelerator_type"] = accelerator_type
    return kw


def processor_config(model: str, **kw: Any):
    from ray.data.llm import vLLMEngineProcessorConfig

    return vLLMEngineProcessorConfig(**processor_config_kwargs(model, **kw))


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
    """The first generated token's {decoded token: logprob} from Ray's vLLM output row."""
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
        if probs is None:
            status, error = BACKEND_ERROR, "no grade token among the first token's top logprobs"
    p = probs if probs is not None else np.full(3, np.nan)
    return {**keep, "judge_id": judge_id, "judge_version": version,
            "grade": int(np.argmax(p)) if probs is not None else -1,
            "p0": float(p[0]), "p1": float(p[1]), "p2": float(p[2]), "status": status, "error": error}


def build_processor(model: str, guideline_version: str = GUIDELINE_VERSION, **kw: Any):
    """A Ray Data LLM processor: ``processor(ds)`` maps candidate rows to judgment rows (GPU workers)."""
    from ray.data import llm as rdl

    build = getattr(rdl, "build_llm_processor", None) or rdl.build_processor
    judge_id, version = judge_identity(model, guideline_version)
    return build(
        processor_config(model, **kw),
        preprocess=lambda row: preprocess(row, guideline_version),
        postprocess=lambda row: postprocess(row, judge_id, version),
    )
