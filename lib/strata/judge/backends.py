"""Backend registry: a ``JudgeConfig`` -> a ``Judge``; the judge id is known without loading it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from strata.judge.config import JudgeConfig
from strata.judge.prompt import guideline_id


def judge_identity(cfg: JudgeConfig) -> tuple[str, str]:
    """(judge_id, version) of the judge ``cfg`` would build, without loading weights."""
    if cfg.backend == "distilled":
        meta = json.loads((Path(cfg.model).expanduser() / "judge.json").read_text())
        return f"{meta['name']}@{meta['version']}", meta["version"]
    if cfg.backend == "transformers":
        from strata.judge.generative import identity

        return identity(cfg.model or "smollm2", cfg.guideline)
    version = f"{guideline_id(cfg.guideline)}+{cfg.model}"
    return f"{cfg.backend}-{cfg.model}@{hashlib.sha1(version.encode()).hexdigest()[:12]}", version


def load_judge(cfg: JudgeConfig | dict[str, Any], threads: int | None = None):
    if isinstance(cfg, dict):
        cfg = JudgeConfig(**cfg)
    if cfg.backend == "distilled":
        from strata.judge.model import DistilledJudge

        return DistilledJudge(cfg.model, batch_size=cfg.batch_size, threads=threads)
    if cfg.backend == "transformers":
        from strata.judge.generative import TransformersJudge

        return TransformersJudge(cfg.model or "smollm2", cfg.guideline, batch_size=min(cfg.batch_size, 8),
                                 threads=threads)
    if cfg.backend == "openai":
        from strata.judge.openai_backend import OpenAIJudge

        return OpenAIJudge(cfg)
    raise ValueError("backend 'vllm' runs as a Ray Data LLM processor (strata.judge.vllm_backend), "
                     "not as an in-process judge")
