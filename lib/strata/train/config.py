"""Training knobs (``train:`` in a profile): the two stages, augmentation, Ray Train scaling, checkpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after N optimizer steps (budget), if sooner")
    lr: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    queries_per_batch: int = Field(32, ge=1)


class Stage1Config(StageConfig):
    lr: float = Field(5e-5, gt=0, description="the rate of every measured Stage 1 (1e-4 and 2e-4 scored lower, "
                      "BENCHMARKS.md session 7); in one epoch of the local profile it scored +0.0021 nDCG@10 over "
                      "2e-5 (p 0.10), a second epoch +0.0093 more (session 22)")
    temperature: float = Field(0.05, gt=0, description="softmax temperature of the graded loss (0.05 = MNRL's scale "
                               "20; on Home Depot 0.025 and 0.1 both scored lower, BENCHMARKS.md session 12)")
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
                                    "one row per grade, then uniform (judge rows then take 5-6 of 8 on Home Depot). "
                                    "bench_distill.py's --judged")
    circle_weight: float = Field(0.25, ge=0, description="weight of the multi-class circle loss (1 with "
                                 "supcon_weight=0 = the paper's loss alone); on Home Depot nDCG@10 falls as it grows")
    supcon_weight: float = Field(1.0, ge=0, description="add this weight x the Stage 1 loss (its temperature "
                                 "and partials) to the circle loss; 0 = circle loss alone (the paper's)")
    distill_weight: float = Field(0.0, ge=0, description="add this weight x listwise distillation of the mining "
                                  "judge's expected grades (the groups' teachers; ListwiseDistillLoss). +0.004 "
                                  "nDCG@10 in bench_distill.py; through this stage with judged_rows=4 and "
                                  "distill_temperature 0.25, 0.3695 vs MNRL's 0.3587 (BENCHMARKS.md, Training, "
                                  "sessions 16-20). 0 = off")
    distill_temperature: float = Field(0.25, gt=0, description="teacher temperature of the distillation (the "
                                       "student's is stage1.temperature). On Home Depot 0.25 scored 0.3695 "
                                       "nDCG@10 (0.3699 with seed 14), 0.5 0.3669, 0.125 0.3675 (BENCHMARKS.md, "
                                       "Training, session 20)")
    distill_negative_score: float = Field(0.0, description="teacher score of the other queries' in-batch "
                                          "products (the grade scale: 0 = irrelevant; lower = the teacher puts "
                                          "less mass on them, apart from its temperature)")
    label_judged: bool = Field(True, description="judge-scored rows count as labels (their argmax grade) in the "
                               "circle and Stage 1 terms; False = they reach only the distillation term, as in "
                               "bench_distill.py (as labels, the judge's hard grades cost 2.7% nDCG@10: "
                               "BENCHMARKS.md, Training)")

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
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI (None = file store under the run dir)")
    experiment: str = "strata-train"
    seed: int = 13
