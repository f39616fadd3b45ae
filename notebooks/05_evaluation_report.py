# Databricks notebook source
# MAGIC %md
# MAGIC # 05 Evaluation report and slices
# MAGIC
# MAGIC One evaluation run (`strata run`, or `strata eval` + `strata report`): did the best retriever beat
# MAGIC the reference, by how much and how surely (paired bootstrap), and where (query slices); how well each
# MAGIC dense model separates exact from irrelevant products; and the queries where two retrievers differ most.
# MAGIC The plots are the report's own (`strata.evaluate.report_html`); nothing is recomputed except the
# MAGIC per-query differences.
# MAGIC
# MAGIC Parameters: `run_dir` (default: the newest `runs/*` with a `metrics.json`), `compare` (retriever to
# MAGIC set against the reference; default the best one), `out_dir`, `top_n`.

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

P = notebook_params(run_dir="", compare="", out_dir="/tmp/strata-notebooks/05_evaluation_report", top_n=15)
P

# COMMAND ----------

from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown, display

from strata.evaluate import report_html
from strata.evaluate.analysis import best_retriever, load_analysis
from strata.explore import evaluation, plots

pd.set_option("display.max_colwidth", 80)
run_dir = evaluation.find_run(P.run_dir)
if not (run_dir / "analysis.json").is_file():
    raise FileNotFoundError(f"{run_dir}: no analysis.json; run `strata report {run_dir}` first")
analysis, per_query = load_analysis(run_dir)
metric = analysis["primary_metric"]
print(f"run: {run_dir}\ndev set: {analysis['dataset']} ({analysis['num_queries']} queries, "
      f"{analysis['num_docs']} products)")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Verdict and metrics

# COMMAND ----------

v = report_html.verdict(analysis)
display(HTML(f"<div style='padding:8px;border-left:6px solid #888'>{v['text']}</div>"))
metrics = evaluation.metric_frame(analysis)
display(metrics.round(4))
comparisons = evaluation.comparison_frame(analysis)
display(comparisons)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Where: slices
# MAGIC Popularity (head / torso / tail), zero-click, query length and spelling slices, as in `report.html`.

# COMMAND ----------

slices = evaluation.slice_frame(analysis)
display(slices)
slices_png = plots.show_png(report_html.slice_plot(analysis), P.out_dir, "slices")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Score separation
# MAGIC Cosine similarity of the labelled (query, product) pairs per grade for each dense model: the less the
# MAGIC exact and irrelevant histograms overlap, the more a similarity threshold means something.

# COMMAND ----------

for name, sep in analysis.get("separation", {}).items():
    plots.show_png(report_html.separation_plot(name, sep), P.out_dir, f"separation_{name}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Query by query
# MAGIC The reference against one retriever (`compare`, default the best): the distribution of per-query
# MAGIC differences, and the queries it loses and wins most.

# COMMAND ----------

ref = analysis.get("reference") or next(iter(analysis["retrievers"]))
other = P.compare or best_retriever(analysis, metric)
if other == ref:
    other = next((r for r in analysis["retrievers"] if r != ref), ref)
deltas = evaluation.query_deltas(per_query, ref, other, metric, evaluation.run_queries(run_dir))
fig = plots.delta_hist(deltas, ref, other, metric)
deltas_png = plots.save(fig, P.out_dir, "query_deltas")
display(Markdown(f"**Largest losses of `{other}` against `{ref}`**"))
display(deltas.head(P.top_n))
display(Markdown(f"**Largest wins of `{other}` against `{ref}`**"))
display(deltas.tail(P.top_n).iloc[::-1])

# COMMAND ----------

# MAGIC %md
# MAGIC The full self-contained report of this run is `report.html` in the run directory.

# COMMAND ----------

print(run_dir / "report.html")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Key outputs

# COMMAND ----------

key_outputs(
    P.out_dir,
    files={"query_deltas": deltas_png, **({"slices": slices_png} if slices_png else {})},
    values={"run_dir": str(run_dir), "best": best_retriever(analysis, metric), "metric": metric,
            "retrievers": int(len(metrics)), "reference": ref, "compared": other,
            "queries": int(analysis["num_queries"])},
)
