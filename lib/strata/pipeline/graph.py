"""The stage graph: every step of Strata's flow, declared once.

``strata run`` executes the graph's main steps for a profile, ``strata refresh`` the same steps with
fingerprint skipping plus the tail (gate -> promote -> index), ``strata submit`` sends one step or the whole
graph to a cluster, and ``strata infra render`` writes the Databricks tasks, the Airflow DAG's tasks and the
KubeRay entrypoints from it; ``strata run --plan`` prints it. Nothing else lists the steps.

A step names the config sections it reads, the lakehouse tables it reads and writes, the outputs of earlier
steps it uses, the engines it needs, and its function (``module:function``, imported only when the step runs,
so this module stays light enough for the CLI and the infra renderer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from strata.config import StrataConfig

SPARK, RAY, GPU = "spark", "ray", "gpu"
MODES = ("run", "refresh")


@dataclass(frozen=True)
class Step:
    """One node of the graph. ``when`` says why the step is off for a config (None: it runs)."""

    name: str
    fn: str
    doc: str
    stage: str = ""  # the stage function that holds the step's logic (``module:function``), for the docs
    sections: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    engines: frozenset[str] = field(default_factory=frozenset)
    when: Callable[["StrataConfig"], str | None] = lambda cfg: None
    start: bool = False  # reads the start model (refresh: the champion), so its fingerprint includes it
    tail: bool = False  # refresh only: after the main steps
    always: bool = False  # never skipped by its fingerprint (incremental by itself, or cheap)

    def off_reason(self, cfg: "StrataConfig", mode: str = "run") -> str | None:
        if self.tail and mode != "refresh":
            return "refresh only"
        return self.when(cfg)

    @property
    def task_key(self) -> str:
        """The step's name where a scheduler allows no hyphen (Databricks task keys, Python names)."""
        return self.name.replace("-", "_")

    @property
    def cluster(self) -> str:
        """Which cluster a scheduler runs the step on: Ray or GPU steps the GPU/Ray cluster, the rest Spark's."""
        return "ray_gpu" if self.engines & {RAY, GPU} else "spark_cpu"


def _flag(name: str) -> Callable[["StrataConfig"], str | None]:
    return lambda cfg: None if getattr(cfg.pipeline, name) else f"pipeline.{name} is off"


def _trained(cfg: "StrataConfig") -> str | None:
    return None if cfg.pipeline.train else "pipeline.train is off"


def _remine(cfg: "StrataConfig") -> str | None:
    if cfg.pipeline.remine is None:
        return "pipeline.remine is not set"
    return _trained(cfg)


_INGESTED = ("products", "taxonomy", "search_events", "labels", "queries", "quarantine", "ingest_log")
_FEATURES = ("product_features", "taxonomy_neighbours", "query_stats", "query_product_engagement",
             "query_attributes")
_MINED_FROM = ("labels", "products", "product_features", "taxonomy_neighbours", "query_product_engagement",
               "query_attributes", "judgments")
_S = "strata.pipeline.steps"

GRAPH: tuple[Step, ...] = (
    Step("ingest", f"{_S}:ingest", "parse, validate, quarantine and MERGE every source into the lakehouse",
         stage="strata.ingest.run:ingest",
         sections=("data", "split"), writes=_INGESTED, engines=frozenset({SPARK}), always=True),
    Step("devset", f"{_S}:devset", "export the eval dataset's dev split and its catalog as a BEIR folder",
         stage="strata.evaluate.devset:export_devset",
         sections=("eval",), reads=("labels", "products"), engines=frozenset({SPARK})),
    Step("enrich", f"{_S}:enrich", "give catalogs without categories their titles' nearest Google-taxonomy path",
         stage="strata.features.enrich:enrich_uncategorised",
         sections=("pipeline", "embed"), reads=("products", "taxonomy", "product_categories"),
         writes=("product_categories",),
         engines=frozenset({SPARK}), when=_flag("enrich")),
    Step("features", f"{_S}:features", "taxonomy neighbours, attributes, query stats and engagement",
         stage="strata.features.job:run_features",
         reads=("products", "taxonomy", "search_events", "labels", "product_categories"), writes=_FEATURES,
         engines=frozenset({SPARK}), when=_flag("features")),
    Step("judge-train", f"{_S}:judge_train", "train the distilled judge on the labels' train split",
         stage="strata.judge.trainer:train_judge",
         sections=("judge_train",), reads=("labels", "products"), engines=frozenset({GPU}), when=_flag("judge")),
    Step("mine", f"{_S}:mine", "structured + ANN negatives of the start model, judge-guarded -> training_examples",
         stage="strata.mine.job:run_mining",
         sections=("mine", "split", "embed", "judge"), reads=_MINED_FROM, writes=("training_examples", "judgments"),
         uses=("judge-train",), engines=frozenset({SPARK, RAY, GPU}), start=True, when=_flag("mine")),
    Step("train-stage1", f"{_S}:train_stage1", "Stage 1: label-aware supervised contrastive fine-tune",
         stage="strata.train.runner:train",
         sections=("train",), reads=("training_examples", "products", "judgments"),
         engines=frozenset({SPARK, RAY, GPU}), start=True, when=_trained),
    Step("remine", f"{_S}:remine", "mine again with the Stage 1 model, every candidate judged",
         stage="strata.mine.job:run_mining",
         sections=("mine", "pipeline", "split", "embed", "judge"), reads=_MINED_FROM,
         writes=("training_examples", "judgments"), uses=("judge-train", "train-stage1"),
         engines=frozenset({SPARK, RAY, GPU}), when=_remine),
    Step("train-stage2", f"{_S}:train_stage2", "Stage 2: multi-class circle loss (+ judge distillation)",
         stage="strata.train.runner:train",
         sections=("train",), reads=("training_examples", "products", "judgments"), uses=("train-stage1",),
         engines=frozenset({SPARK, RAY, GPU}), when=_trained),
    Step("evaluate", f"{_S}:evaluate", "full-corpus retrieval of every retriever on the dev set, then analysis",
         stage="strata.evaluate.beir_eval:evaluate_beir",
         sections=("eval", "embed"), reads=("query_stats", "products"),
         uses=("devset", "judge-train", "train-stage2"), engines=frozenset({SPARK, RAY, GPU}), start=True),
    Step("report", f"{_S}:report", "report.md and report.html from the run's outputs",
         stage="strata.pipeline.report:write_report", uses=("evaluate",),
         always=True),
    Step("gate", f"{_S}:gate", "paired bootstrap of the candidate against the champion; registers the candidate",
         stage="strata.evaluate.significance:gate",
         sections=("refresh",), uses=("evaluate", "train-stage2"), tail=True, when=_trained),
    Step("promote", f"{_S}:promote", "move the registry alias `champion` to the candidate the gate passed",
         stage="strata.pipeline.registry:Registry",
         uses=("gate",), tail=True, when=_trained),
    Step("index", f"{_S}:index", "rebuild the product index with the champion",
         stage="strata.embed.stage:embed_catalog",
         sections=("embed", "eval", "refresh"), reads=("products",), uses=("promote",),
         engines=frozenset({SPARK, RAY, GPU}), tail=True),
)

STEPS: dict[str, Step] = {s.name: s for s in GRAPH}


class GraphError(ValueError):
    """An unknown step name, or a step asked for without an output it needs."""


def step(name: str) -> Step:
    try:
        return STEPS[name]
    except KeyError:
        raise GraphError(f"unknown step {name!r} (have {', '.join(STEPS)})") from None


def plan(cfg: "StrataConfig", mode: str = "run") -> list[tuple[Step, str | None]]:
    """Every step in order with why it is off for ``cfg`` in ``mode`` (None: it runs)."""
    if mode not in MODES:
        raise GraphError(f"mode must be one of {MODES} (got {mode!r})")
    return [(s, s.off_reason(cfg, mode)) for s in GRAPH]


def active(cfg: "StrataConfig", mode: str = "run") -> list[Step]:
    """The steps that run for ``cfg`` in ``mode``, in order."""
    return [s for s, why in plan(cfg, mode) if why is None]
