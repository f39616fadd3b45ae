# Databricks notebook source
# MAGIC %md
# MAGIC # 02 Judge calibration
# MAGIC
# MAGIC How far one relevance judge can be trusted: its judgments (`judgments` table, written by
# MAGIC `strata judge score`) joined with the human grades (`labels`), scored with the same calibration
# MAGIC report as `strata judge calibrate` (accuracy, within-1, quadratic kappa against the majority-grade
# MAGIC baseline), the confusion matrix, the most confident disagreements, and the engagement audit
# MAGIC (judgments that shoppers' clicks and purchases contradict).
# MAGIC
# MAGIC Parameters: `lakehouse` (default: the newest `runs/*/lakehouse`), `judge_id` (default: the judge
# MAGIC with the most judgments), `split` (`""` = all labelled pairs, or `dev` / `train`), `out_dir`, `top_n`.

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

P = notebook_params(lakehouse="", judge_id="", split="", out_dir="/tmp/strata-notebooks/02_judge_calibration",
                    top_n=20)
P

# COMMAND ----------

import pandas as pd
from IPython.display import Markdown, display

from strata.explore import judging, plots, tour
from strata.explore.evaluation import find_lakehouse
from strata.judge.calibrate import to_markdown
from strata.tables import Lakehouse

pd.set_option("display.max_colwidth", 100)
lh = Lakehouse(find_lakehouse(P.lakehouse))
judgments = tour.read(lh, "judgments")
display(judging.judges(judgments))
judge_id = judging.pick_judge(judgments, P.judge_id or None)
assert judge_id, f"{lh.root} has no judgments: run `strata judge score --lakehouse {lh.root} ...` first"
print("judge:", judge_id)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Agreement with the human grades

# COMMAND ----------

pairs = judging.judged_pairs(judgments, tour.read(lh, "labels"), judge_id, split=P.split or None)
assert len(pairs), f"no judgments of {judge_id} overlap the human labels"
report = judging.calibration(pairs, meta={"judge_id": judge_id, "lakehouse": str(lh.root),
                                          "split": P.split or "all"})
display(Markdown(to_markdown(report, f"Judge calibration: {judge_id}")))

# COMMAND ----------

fig = plots.confusion_plot(report, judge_id)
confusion_png = plots.save(fig, P.out_dir, "confusion")
fig = plots.expected_grade_plot(pairs)
plots.save(fig, P.out_dir, "expected_grade")
display(judging.confusion_frame(report))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Disagreements
# MAGIC Pairs two grades apart (exact vs irrelevant), the judge's most confident first: either the judge is
# MAGIC wrong with confidence, or the human label is.

# COMMAND ----------

dis = judging.disagreements(pairs, tour.read(lh, "products", ["source", "product_id", "title"]), n=P.top_n)
display(dis)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Engagement audit
# MAGIC `strata judge audit` rules: judged irrelevant but bought / added to cart / clicked often, or judged
# MAGIC exact but shown often and never clicked. Read from `judge_audit` when the audit job ran, otherwise
# MAGIC computed here with the same function (nothing written).

# COMMAND ----------

audit, audit_from = judging.audit_table(lh, judge_id)
print(f"audit rows: {len(audit)} ({audit_from})")
display(judging.audit_reasons(audit))
display(audit.head(P.top_n))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Key outputs

# COMMAND ----------

key_outputs(
    P.out_dir,
    files={"confusion": confusion_png},
    values={"judge_id": judge_id, "pairs": int(report["n"]), "accuracy": report["accuracy"],
            "kappa": report["kappa"], "majority_accuracy": report["majority_accuracy"],
            "disagreements": int(len(dis)), "audit_rows": int(len(audit)), "audit_from": audit_from},
)
