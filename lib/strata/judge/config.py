"""The judge's typed settings: ``JudgeConfig`` (which judge scores pairs, and how the judging job runs) and
``JudgeTrainConfig`` (how the distilled judge is trained).

Both live here, apart from the code that uses them, so ``strata.config`` can compose them without importing
torch or the training loop, and so each knob's default and range are stated once: the CLI, the pipeline and
the library all read them from these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strata.config_base import StrictModel
from strata.judge.prompt import GUIDELINE_VERSION
from strata.precision import PRECISION_HELP, Precision
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
    max_error_share: float = Field(0.01, ge=0, le=1, description="largest share (0-1) of a run's pairs the judge "
                                   "may fail on (status error:backend) before the run fails; failed pairs are "
                                   "retried by the next run either way. 1 = never fail")
    # vllm backend (actors = engine replicas, batch_size = rows per engine call)
    accelerator_type: str | None = Field(None, description="vllm: GPU type of the engine workers (e.g. H100); "
                                         "None = any GPU")
    vllm_engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="vllm: extra vLLM engine "
                                               "arguments (e.g. tensor_parallel_size, max_model_len)")
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


class JudgeTrainConfig(StrictModel):
    """How the distilled judge is trained: the cross-encoder fine-tune, then the grade head stacked on it.

    The defaults are what ``strata run`` trains its judge with; ``strata judge train`` overrides only the
    options it is given.
    """

    name: str = Field("distilled-minilm", min_length=1,
                      description="judge name; its id is name@weights-hash")
    base: str = Field("baseline", min_length=1,
                      description="model the cross-encoder starts from: 'baseline' (the packaged MiniLM) or a "
                      "model dir")
    layers: int | None = Field(None, ge=1,
                               description="keep only the first N transformer layers of the base (>= 1; None = "
                               "all): fewer layers train and score faster")
    pooling: Literal["mean", "cls"] = Field("mean",
                                            description="how the cross-encoder pools tokens: mean (over real "
                                            "tokens) or cls (the base's own classification head)")
    epochs: float = Field(1.0, gt=0, description="passes over the training pairs (> 0; fractions allowed)")
    batch_size: int = Field(32, ge=1, description="pairs per optimizer step (>= 1)")
    lr: float = Field(5e-5, gt=0, description="peak learning rate of the pre-trained body (> 0)")
    head_lr: float = Field(2e-3, gt=0,
                           description="peak learning rate of the new, randomly initialised 3-way head (> 0)")
    max_length: int = Field(48, ge=8, le=512,
                            description="tokens per (query, product) pair, longer pairs truncated (8-512)")
    max_pairs: int | None = Field(None, ge=1,
                                  description="train on a random subset of at most N pairs (>= 1; None = all)")
    max_seconds: float | None = Field(None, gt=0,
                                      description="wall-time cap of the cross-encoder training (> 0; None = "
                                      "none)")
    seed: int = Field(13, description="seed of the pair shuffle, the weights init and the grade head")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (>= 1; None = torch's default)")
    precision: Precision = Field("fp32", description="training and scoring (the judge keeps it) in " + PRECISION_HELP)
    stack_fraction: float = Field(0.25, ge=0, lt=1,
                                  description="share of training queries held out from the cross-encoder to fit "
                                  "the grade head on, in [0, 1) (0 = no grade head)")
    encoder: str = Field("baseline", min_length=1,
                         description="bi-encoder whose query/product cosine is a grade-head feature ('baseline' "
                         "or a model dir)")
    encoder_max_seq_length: int | None = Field(48, ge=8, le=512,
                                               description="tokens per text for that bi-encoder (8-512; None = "
                                               "the model's own limit)")
