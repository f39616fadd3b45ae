"""Backend registry: a small serialisable spec -> a ``Judge``; the judge id is known without loading it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strata.judge.prompt import GUIDELINE_VERSION, guideline_id
from strata.secret_policy import ENV_NAME, find_secret_fields, url_credential

SECRET_HINT = ("API keys are never read from a config file, --set override or job parameter (the config is "
               "written into every run manifest). Put the key in an environment variable and name the variable "
               "in judge.api_key_env (default OPENAI_API_KEY); on Databricks map a secret scope into it "
               "({{secrets/<scope>/<key>}}), on Kubernetes a Secret (secretKeyRef)")

Backend = Literal["distilled", "transformers", "vllm", "openai"]


class JudgeConfig(BaseModel):
    """How to judge (the lead wires this into StrataConfig as ``judge``)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    backend: Backend = "distilled"
    model: str = Field("", description="distilled: a trained judge dir; transformers: 'smollm2' or a dir; "
                                       "vllm/openai: the model name")
    guideline: str = GUIDELINE_VERSION
    batch_size: int = Field(64, ge=1)
    chunk_rows: int = Field(2048, ge=1, description="rows judged between two MERGEs into judgments")
    actors: int = Field(1, ge=1)
    actor_cpus: float = Field(0.5, gt=0)
    actor_gpus: float = Field(0.0, ge=0)
    ray_min_pairs: int = Field(1024, ge=0, description="distilled backend: fewer pairs than this are judged in the "
                               "driver, not by a Ray Data job (its actor and model start cost more than judging a "
                               "thousand pairs with a small cross-encoder); 0 = always Ray. Other backends ignore it")
    # openai backend
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0)
    requests_per_second: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            bad = find_secret_fields({k: None for k in data})
            if bad:
                raise ValueError(f"{', '.join(bad)}: not a judge setting. {SECRET_HINT} (value not shown)")
        return data

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not ENV_NAME.match(v):
            raise ValueError("must be the NAME of the environment variable that holds the key (e.g. "
                             "OPENAI_API_KEY), not the key itself (value not shown)")
        return v

    @field_validator("base_url")
    @classmethod
    def _no_url_credentials(cls, v: str | None) -> str | None:
        why = url_credential(v)
        if why:
            raise ValueError(f"holds {why}; credentials go in the environment variable named by "
                             "judge.api_key_env, not in the URL (value not shown)")
        return v


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
        from strata.judge.distilled import DistilledJudge

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
