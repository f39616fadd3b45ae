"""Backend registry: a ``JudgeConfig`` -> a ``Judge``; the judge id is known without loading it.

``judge_identity`` must give the id the judge itself writes into ``judgments``: the resume looks pairs up by it,
so each backend's id comes from the one function its judge uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from strata.judge.config import JudgeConfig


def judge_identity(cfg: JudgeConfig) -> tuple[str, str]:
    """(judge_id, version) of the judge ``cfg`` would build, without loading weights."""
    if cfg.backend == "distilled":
        meta = json.loads((Path(cfg.model).expanduser() / "judge.json").read_text())
        return f"{meta['name']}@{meta['version']}", meta["version"]
    if cfg.backend == "transformers":
        from strata.judge.generative import identity

        return identity(cfg.model or "smollm2", cfg.guideline)
    if cfg.backend == "vllm":
        from strata.judge.vllm_backend import judge_identity as vllm_identity

        return vllm_identity(cfg.model, cfg.guideline)
    from strata.judge.openai_backend import identity

    return identity(cfg.model, cfg.guideline)


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
    if cfg.backend == "vllm":
        from strata.judge.vllm_backend import VLLMJudge

        return VLLMJudge(cfg)
    from strata.judge.openai_backend import OpenAIJudge

    return OpenAIJudge(cfg)
