# Databricks notebook source
# MAGIC %md
# MAGIC # 04 Training curves and stage comparison
# MAGIC
# MAGIC One `strata train --out OUT` run: the per-step loss, learning rate and throughput MLflow recorded for
# MAGIC Stage 1 (contrastive, mined negatives) and Stage 2 (graded), the stages side by side (steps,
# MAGIC examples/s, final loss from `train.json`), and, when `bench/bench_train.py` has been run, the
# MAGIC dev-split quality of the off-the-shelf model, BM25, the sentence-transformers MNRL fine-tune,
# MAGIC Stage 1 and Stage 1+2.
# MAGIC
# MAGIC Parameters: `train_dir` (the `--out` folder; default: the newest `runs/*/train.json` or
# MAGIC `runs/*/*/train.json`), `bench_json` (default: `bench/results/train.json` when it exists, else none),
# MAGIC `out_dir`. Everything shown comes from `strata.explore.training`.

# COMMAND ----------

# A Databricks Repo checkout without the strata wheel installed: import it from the repo's lib/.
try:
    import strata  # noqa: F401
except ImportError:
    import os
    import sys

    sys.path.insert(0, os.path.abspath(os.path.join(os.getcwd(), "..", "lib")))

# COMMAND ----------

from strata.notebook import key_outputs, notebook_params

P = notebook_params(train_dir="", bench_json="", out_dir="/tmp/strata-notebooks/04_training")
P

# COMMAND ----------

import json

import pandas as pd
from IPython.display import Markdown, display

from strata.explore import plots, training

pd.set_option("display.max_colwidth", 80)
train_dir = training.find_train_dir(P.train_dir)
summary = training.load_summary(train_dir)
stages = training.stage_frame(summary)
uri = training.tracking_uri(train_dir, summary)
print(f"train run: {train_dir}\nquery groups: {summary.get('groups')} "
      f"({summary.get('synthetic_groups', 0)} synthetic), augmentation: {summary.get('augmentation')}\n"
      f"final model: {summary.get('model')}\nMLflow: {uri}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Training curves
# MAGIC From the MLflow runs `stage1` / `stage2` of the `strata-train` experiment (the newest run of each
# MAGIC name; a resumed stage continues its run). `loss` is an exponential moving average; Stage 2's steps are
# MAGIC drawn after Stage 1's.

# COMMAND ----------

experiment = (summary.get("config") or {}).get("experiment") or "strata-train"
history = training.metric_history(uri, experiment)
if history.empty:
    display(Markdown(f"**No MLflow metrics** for experiment `{experiment}` at `{uri}`."))
else:
    display(history.groupby(["stage", "metric"])["value"].agg(["count", "first", "last"]))
fig = training.curves_plot(history, stages)
curves_png = plots.save(fig, P.out_dir, "training_curves")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Stages of this run
# MAGIC From `train.json`: optimizer steps, query groups, wall time, throughput, the final (EMA) loss and the
# MAGIC step a stage resumed from after an interruption.

# COMMAND ----------

display(stages)
last = stages.iloc[-1]
fig = training.stage_plot(stages)
stages_png = plots.save(fig, P.out_dir, "stages")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Stage comparison (benchmark)
# MAGIC `bench/bench_train.py` trains both stages and an MNRL fine-tune with the same budget and evaluates
# MAGIC them with the off-the-shelf model and BM25 on the dev split. Without its result file this section
# MAGIC shows nothing more than the run's own stages above.

# COMMAND ----------

bench_path = training.find_bench(P.bench_json)
bench_png, bench = None, None
if bench_path is None:
    display(Markdown("**No benchmark file** (`bench/results/train.json`): run `bench/bench_train.py` for the "
                     "quality comparison; the stages above are this run's own."))
else:
    bench = json.loads(bench_path.read_text())
    quality = training.bench_frame(bench)
    display(Markdown(f"benchmark: `{bench_path}` ({bench.get('date', 'undated')})"))
    display(quality.round(4))
    display(training.bench_stage_frame(bench))
    fig = training.bench_plot(quality)
    bench_png = plots.save(fig, P.out_dir, "stage_comparison")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Key outputs

# COMMAND ----------

key_outputs(
    P.out_dir,
    files={"training_curves": curves_png, "stages": stages_png,
           **({"stage_comparison": bench_png} if bench_png else {})},
    values={"train_dir": str(train_dir), "stages": int(len(stages)), "steps": int(stages["steps"].sum()),
            "logged_points": int(len(history)),
            "final_loss": float(last["final_loss"]) if pd.notna(last["final_loss"]) else "n/a",
            "bench": str(bench_path) if bench_path else "none",
            **({"best_ndcg10": float(quality["ndcg@10"].max())} if bench else {})},
)
