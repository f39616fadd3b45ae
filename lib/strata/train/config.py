"""Training knobs (``train:`` in a profile): the two stages, augmentation, Ray Train scaling, checkpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strata.precision import PRECISION_HELP, Precision


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after N optimizer steps (budget), if sooner")
    lr: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    queries_per_batch: int = Field(32, ge=1)


class Stage1Config(StageConfig):
    lr: float = Field(5e-5, gt=0, description="peak learning rate of Stage 1 (> 0)")
    temperature: float = Field(0.05, gt=0, description="softmax temperature of the graded loss (> 0; 0.05 = MNRL's "
                               "scale 20; lower sharpens the contrast between positives and negatives)")
    positives: int = Field(1, ge=1, description="top-grade rows per query per step (several exact matches of a "
                           "query are all positives of the graded loss; 1 = one drawn per step)")
    negatives: int = Field(3, ge=0, description="lower-graded / mined rows per query besides its positives")
    partials: Literal["graded", "negative", "ignore"] = Field(
        "graded", description="partial matches: graded = positives below exact (exact > partial > irrelevant); "
        "negative = pushed away like irrelevant ones; ignore = neither")
    symmetric: float = Field(0.0, ge=0, description="weight of the reverse (product -> query) contrastive term")
    hard_temperature: float | None = Field(
        None, gt=0, description="draw the irrelevant rows with weight exp(mining score / T) instead of uniformly "
        "(favours ANN / attribute / human-judged negatives over random-category ones); None = uniform")


class Stage2Config(StageConfig):
    lr: float = Field(1e-5, gt=0)
    optima: tuple[float, float, float] = (0.0, 0.5, 1.0)
    margins: tuple[float, float, float] = (0.25, 0.25, 0.25)
    gamma: float = Field(32.0, gt=0)
    in_batch_negatives: bool = True
    rows_per_query: int = Field(8, ge=2)
    judged_rows: int | None = Field(None, ge=0, description="of rows_per_query, slots kept for judge-scored rows "
                                    "(as far as a query has them), the rest for its human-labelled rows; None = "
                                    "one row per grade, then uniform")
    circle_weight: float = Field(0.25, ge=0, description="weight of the multi-class circle loss (>= 0; 1 with "
                                 "supcon_weight=0 = the paper's loss alone)")
    supcon_weight: float = Field(1.0, ge=0, description="add this weight x the Stage 1 loss (its temperature "
                                 "and partials) to the circle loss; 0 = circle loss alone (the paper's)")
    distill_weight: float = Field(0.0, ge=0, description="add this weight x listwise distillation of the mining "
                                  "judge's expected grades (the groups' teachers; ListwiseDistillLoss); >= 0, 0 = off")
    distill_temperature: float = Field(0.25, gt=0, description="teacher temperature of the distillation (> 0; "
                                       "the student's is stage1.temperature; lower makes the teacher's ranking "
                                       "sharper)")
    distill_negative_score: float = Field(0.0, description="teacher score of the other queries' in-batch "
                                          "products (the grade scale: 0 = irrelevant; lower = the teacher puts "
                                          "less mass on them, apart from its temperature)")
    label_judged: bool = Field(True, description="judge-scored rows count as labels (their argmax grade) in the "
                               "circle and Stage 1 terms; False = they reach only the distillation term")

    @property
    def uses_teachers(self) -> bool:
        """Whether the stage reads the groups' teachers / judged columns (one rule for runner and loop)."""
        return bool(self.distill_weight) or not self.label_judged or self.judged_rows is not None

    @model_validator(mode="after")
    def _some_loss(self) -> "Stage2Config":
        if not (self.circle_weight or self.supcon_weight or self.distill_weight):
            raise ValueError("stage2: circle_weight, supcon_weight and distill_weight are all 0 (no loss to train)")
        if self.judged_rows is not None and self.judged_rows > self.rows_per_query:
            raise ValueError(f"stage2: judged_rows ({self.judged_rows}) > rows_per_query ({self.rows_per_query})")
        return self


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str = Field("baseline", description="start of Stage 1 ('baseline' = packaged MiniLM or a dir)")
    max_seq_length: int = Field(48, ge=8)
    stage1: Stage1Config = Field(default_factory=Stage1Config)
    stage2: Stage2Config = Field(default_factory=Stage2Config)
    catalogs: list[str] = Field(default_factory=list, description="train on these catalogs ([] = all)")
    spelling_rate: float = Field(0.1, ge=0, le=1, description="share of real queries given a misspelled copy")
    synthetic_queries: int = Field(0, ge=0, description="products given a synthetic query")
    synthetic_generator: str = Field("template", description="template | smollm2")
    workers: int = Field(1, ge=1, description="Ray Train workers (gloo on CPU, NCCL on GPU)")
    cpus_per_worker: float = Field(1.0, gt=0)
    use_gpu: bool = False
    checkpoint_every: int = Field(200, ge=1, description="steps between checkpoints")
    keep_checkpoints: int = Field(2, ge=1)
    max_failures: int = Field(2, ge=0, description="worker failures Ray Train recovers from (from a checkpoint)")
    log_every: int = Field(20, ge=1)
    threads: int | None = Field(None, ge=1, description="torch threads per worker (None = cpus_per_worker)")
    precision: Precision = Field("fp32", description="forward and backward passes in " + PRECISION_HELP)
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI (None = file store under the run dir)")
    storage: str | None = Field(
        None, description="shared storage for what train workers on other nodes read and write: the training "
        "groups and Ray Train checkpoints (an s3:// URI; credentials from the environment). None = under the run "
        "directory (one machine, or a filesystem every node mounts)")
    experiment: str = "strata-train"
    seed: int = 13


class LoopConfig(BaseModel):
    """What one Ray Train worker gets: the typed ``train`` section and the stage's run-time facts (set by the
    runner). It crosses into the workers as it is (pydantic models pickle), so the loop reads every knob from
    the one typed default above, never from a dict with defaults of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: TrainConfig
    stage: Literal[1, 2]
    init_model: str
    init_folder: Any = Field(None, description="init_model's folder through Ray's object store (strata.ship): "
                             "workers on nodes without the driver's filesystem read it from there")
    total_steps: int = Field(..., ge=1)
    shuffle_buffer: int = Field(..., ge=1)
    mlflow_uri: str
    with_teacher: bool = False
    probe_texts: tuple[str, ...] = ()
    resume_checkpoint: str | None = None
    crash_at_step: int | None = Field(None, description="fault injection for the resume tests")

    @property
    def scfg(self) -> Stage1Config | Stage2Config:
        return self.train.stage1 if self.stage == 1 else self.train.stage2

    @property
    def seed(self) -> int:
        return self.train.seed + self.stage

    @property
    def run_name(self) -> str:
        return f"stage{self.stage}"

    def params(self) -> dict[str, object]:
        """The flat view MLflow logs as the stage run's parameters (scalars only)."""
        t = self.train
        flat = {**self.scfg.model_dump(), "stage": self.stage, "supcon_temperature": t.stage1.temperature,
                "supcon_partials": t.stage1.partials, "init_model": self.init_model,
                "max_seq_length": t.max_seq_length, "total_steps": self.total_steps,
                "checkpoint_every": t.checkpoint_every, "log_every": t.log_every, "seed": self.seed,
                "threads": t.threads, "precision": t.precision, "cpus_per_worker": t.cpus_per_worker, "shuffle_buffer": self.shuffle_buffer,
                "mlflow_uri": self.mlflow_uri, "experiment": t.experiment, "run_name": self.run_name,
                "with_teacher": self.with_teacher, "resume_checkpoint": self.resume_checkpoint,
                "crash_at_step": self.crash_at_step}
        return {k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool)) or v is None}
