"""The run's configuration: the stage sections composed into one ``StrataConfig``, and profile loading.

Each stage package owns its typed section (``strata.<stage>.config``; engines in ``strata.engines``, the split
and the lakehouse in ``strata.config_base``) and is the only place its defaults live; this module composes them
and holds the graph's own two sections: ``pipeline`` (which optional steps run) and ``refresh`` (the tail).

A run is configured by a profile (``demo``, ``local``, ``cluster``: YAML files shipped in
``strata/profiles``), optionally a user YAML file laid over it, then ``key.path=value`` overrides from the
CLI. Validation errors name the dotted field and the bad value so a user can fix a config without reading
code.

Two safety rules are enforced here (issue 11):

- No secrets in a config. The resolved config is written into every run manifest and printed by
  ``strata config``, so a key-like field (``judge.api_key``, ``*.token``, ``*.password``, ...) or a URL with
  credentials (``https://user:pw@host``, ``sc://host/;token=...``) is refused, and the refusal never echoes
  the value. Keys come from the environment (``judge.api_key_env`` names the variable) or a secret scope
  mapped into it.
- Input paths stay inside configured roots (``strata.ingest.config.DataConfig``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from strata.config_base import ConfigError, LakehouseConfig, SplitConfig, StrictModel
from strata.embed.config import EmbedConfig
from strata.engines import EngineConfig
from strata.evaluate.significance import GateConfig
from strata.evaluate.config import EvalConfig
from strata.ingest.config import DataConfig, default_data_root
from strata.judge.config import JudgeConfig, JudgeTrainConfig
from strata.mine.config import MineConfig, MineOverlay, apply_overlay
from strata.secret_policy import HIDDEN, find_secret_fields, find_url_credentials, is_secret_name, redact
from strata.train.config import TrainConfig

__all__ = ["ConfigError", "PROFILES", "StrataConfig", "default_data_root", "load_config", "profile_dict"]

PROFILES = ("demo", "local", "cluster")


class PipelineConfig(StrictModel):
    """Optional steps: category enrichment, features, a distilled judge trained on the labels (RUN_DIR/judge,
    settings in ``judge_train``), mining (judge-guarded when there is a judge), the two-stage fine-tune
    (RUN_DIR/model, evaluated next to the configured retrievers) and Mine and Refine's re-mining pass."""

    features: bool = Field(False, description="build product_features, taxonomy_neighbours, query_stats, ...")
    enrich: bool = Field(False, description="before features: give every catalog without categories (Home Depot) "
                         "the nearest Google-taxonomy path per title (`strata enrich-categories`), so mining's "
                         "taxonomy routes (siblings, cousins, attribute flips) reach it; incremental")
    enrich_limit: int | None = Field(None, ge=1, description="enrich at most N products per catalog (id order)")
    judge: bool = Field(False, description="train the distilled judge on the labels' train split (judge_train)")
    mine: bool = Field(False, description="mine training_examples (structured + ANN negatives)")
    train: bool = Field(False, description="fine-tune Stage 1 then Stage 2 on training_examples")
    remine: MineOverlay | None = Field(
        None, description="Mine and Refine's Stage 2 data: after Stage 1, mine again with the Stage 1 model, every "
        "candidate judged, then train Stage 2 on that table. The value: `mine` knobs to change for this pass "
        "(e.g. {n_ann: 20, rank_min: 0, rank_max: 20, n_sibling: 0}; {} keeps `mine`'s). None: Stage 2 trains on "
        "the one mining pass (the start model's neighbours)")


class RefreshConfig(StrictModel):
    """The refresh's tail: where candidates are registered, the gate that promotes one, the index rebuilt."""

    model_name: str = Field("strata-retriever", description="registered model name in the MLflow registry")
    registry_uri: str | None = Field(None, description="MLflow registry URI (None = file store in the state dir)")
    gate: GateConfig = Field(default_factory=GateConfig)
    index_catalog: str | None = Field(None, description="catalog whose index is rebuilt; None = eval.dataset")


class StrataConfig(StrictModel):
    """A whole run's configuration."""

    profile: Literal["demo", "local", "cluster"] = "demo"
    engine: EngineConfig = Field(default_factory=EngineConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    lakehouse: LakehouseConfig = Field(default_factory=LakehouseConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    judge_train: JudgeTrainConfig = Field(default_factory=JudgeTrainConfig)
    mine: MineConfig = Field(default_factory=MineConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    refresh: RefreshConfig = Field(default_factory=RefreshConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    seed: int = 13

    @model_validator(mode="after")
    def _remine_is_a_judged_mining_pass(self) -> "StrataConfig":
        p = self.pipeline
        if p.remine is None:
            return self
        if not p.train:
            raise ValueError("pipeline.remine re-mines between the training stages: it needs pipeline.train=true")
        if p.remine.model is not None:
            raise ValueError("pipeline.remine.model: the re-mining pass always uses the Stage 1 model")
        if p.remine.use_judge is False:
            raise ValueError("pipeline.remine.use_judge: the re-mined candidates are Stage 2 data only once judged")
        if not p.judge and self.judge.backend == "distilled" and not self.judge.model:
            raise ValueError("pipeline.remine needs a judge to re-annotate the Stage 1 model's neighbours: set "
                             "pipeline.judge=true (train one) or judge.model / judge.backend")
        try:
            self.remine_config("stage1")
        except ValidationError as e:
            def why(err: Any) -> str:
                where = "".join("." + str(x) for x in err["loc"])
                said = f" (got {err['input']!r})" if err["loc"] else " (mine with the remine changes)"
                return f"pipeline.remine{where}: {err['msg'].removeprefix('Value error, ')}{said}"

            raise ValueError("; ".join(why(err) for err in e.errors())) from None
        return self

    def remine_config(self, stage1_model: str) -> MineConfig:
        """``mine`` with ``pipeline.remine``'s changes, mining ``stage1_model``'s neighbours, always judged (even
        when ``mine.use_judge=false`` keeps the judge out of the first pass)."""
        return apply_overlay(self.mine, self.pipeline.remine, model=str(stage1_model), use_judge=True)

    @model_validator(mode="after")
    def _no_url_credentials(self) -> "StrataConfig":
        bad = find_url_credentials(self.model_dump(mode="json"))
        if bad:
            raise ValueError("; ".join(f"{path}: holds {why}" for path, why in bad) + f". {_SECRET_ADVICE}")
        return self


_SECRET_ADVICE = ("Secrets are never read from a config file, --set override or job parameter (the config is "
                  "written into every run manifest and printed by `strata config`): put them in the environment "
                  "(judge.api_key_env names the judge's key variable, default OPENAI_API_KEY; STRATA_SPARK_REMOTE "
                  "for a Spark Connect URL with a token; MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN for MLflow) or a "
                  "secret scope mapped into it ({{secrets/<scope>/<key>}} on Databricks, a Secret on "
                  "Kubernetes). The value is not shown")


def check_no_secrets(doc: dict[str, Any]) -> None:
    """``ConfigError`` if a raw config document holds a key-like field or a URL with credentials."""
    problems = [f"{path}: a secret-like field" for path in find_secret_fields(doc)]
    problems += [f"{path}: holds {why}" for path, why in find_url_credentials(doc)]
    if problems:
        raise ConfigError("secrets in config:\n  " + "\n  ".join(problems) + f"\n{_SECRET_ADVICE}.")


def _shown(field: str, value: Any) -> str:
    last = field.rsplit(".", 1)[-1]
    if is_secret_name(last) or last.lower().endswith("_env"):
        return HIDDEN
    return repr(redact(value))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _apply_override(doc: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.path=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {item!r} has an empty key")
    node = doc
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p} is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw != "" else None


def profile_dict(profile: str) -> dict[str, Any]:
    if profile not in PROFILES:
        raise ConfigError(f"profile: unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    text = resources.files("strata.profiles").joinpath(f"{profile}.yaml").read_text()
    return yaml.safe_load(text) or {}


def load_config(
    profile: str = "demo", path: str | Path | None = None, overrides: list[str] | None = None
) -> StrataConfig:
    """Profile YAML, then the user's YAML, then ``key=value`` overrides; validated once at the end."""
    doc = profile_dict(profile)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        user = yaml.safe_load(p.read_text()) or {}
        if not isinstance(user, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping, not {type(user).__name__}")
        doc = _deep_merge(doc, user)
    for item in overrides or []:
        _apply_override(doc, item)
    doc["profile"] = doc.get("profile", profile)
    check_no_secrets(doc)
    try:
        cfg = StrataConfig.model_validate(doc)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            field = ".".join(str(x) for x in err["loc"])
            if not field:  # a check across sections: its message names the fields; the input is the whole config
                msgs.append(err["msg"].removeprefix("Value error, "))
                continue
            msgs.append(f"{field}: {err['msg']} (got {_shown(field, err.get('input'))})")
        raise ConfigError("invalid config:\n  " + "\n  ".join(msgs)) from None
    cfg.data.check_sources()
    return cfg
