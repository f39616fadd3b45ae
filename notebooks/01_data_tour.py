# Databricks notebook source
# MAGIC %md
# MAGIC # 01 Data tour
# MAGIC
# MAGIC What is in a Strata lakehouse: every table and its size, what ingest read, accepted and quarantined
# MAGIC (and why), the human grades per source and split, and how the search log's queries split into
# MAGIC head / torso / tail and how often a search ends without a click.
# MAGIC
# MAGIC Parameters (widgets on Databricks; papermill `-p`, `STRATA_NB_<NAME>` or the defaults locally):
# MAGIC `lakehouse` (default: the newest `runs/*/lakehouse`), `out_dir` (figures and `key_outputs.json`),
# MAGIC `top_n`. Everything shown is computed by `strata.explore.tour`; this notebook only calls it.

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

P = notebook_params(lakehouse="", out_dir="/tmp/strata-notebooks/01_data_tour", top_n=20)
P

# COMMAND ----------

import pandas as pd
from IPython.display import Markdown, display

from strata.explore import plots, tour
from strata.explore.evaluation import find_lakehouse
from strata.tables import Lakehouse

pd.set_option("display.max_colwidth", 120)
lh = Lakehouse(find_lakehouse(P.lakehouse))
print("lakehouse:", lh.root)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Tables
# MAGIC Rows come from the Delta log's file statistics (nothing is scanned); `version` is the Delta version
# MAGIC a run records in its manifest.

# COMMAND ----------

counts = tour.table_counts(lh)
display(counts)
fig = plots.table_rows(counts)
tables_png = plots.save(fig, P.out_dir, "table_rows")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Ingest and quarantine
# MAGIC Every ingest records `read = accepted + quarantined`; a quarantined row keeps its raw text and the
# MAGIC reason. Reasons are grouped by kind (the row-specific detail stripped).

# COMMAND ----------

ingest = tour.ingest_summary(tour.read(lh, "ingest_log"))
display(ingest)
assert (ingest["read"] == ingest["accepted"] + ingest["quarantined"]).all(), "ingest counts do not add up"

# COMMAND ----------

quarantine = tour.quarantine_summary(tour.read(lh, "quarantine"))
display(quarantine.head(P.top_n))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Human grades
# MAGIC 2 exact, 1 partial, 0 irrelevant; the split is by hash of the normalised query, so a query's
# MAGIC labels never straddle train and dev.

# COMMAND ----------

grades = tour.label_grades(tour.read(lh, "labels", ["source", "query_norm", "product_id", "grade", "split"]))
display(grades)
fig = plots.grade_bars(grades)
grades_png = plots.save(fig, P.out_dir, "label_grades")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Query segments and zero-click
# MAGIC From `query_stats` (built by `strata data features` from the search log): head = the queries that
# MAGIC make the first half of searches, torso the next 30%, tail the rest. Zero-click rate = the share of
# MAGIC sessions that searched the query and never clicked; *zero-click-heavy* (>= 0.5) is the same threshold
# MAGIC as the evaluation's `zero_click` slice.

# COMMAND ----------

stats = tour.read(lh, "query_stats")
if stats.empty:
    display(Markdown("**No `query_stats` table**: run `strata data features --lakehouse ...` to build it "
                     "from the search log."))
segments = tour.segment_summary(stats)
display(segments)

# COMMAND ----------

segments_png = None
if not segments.empty:
    fig = plots.segment_plot(segments)
    segments_png = plots.save(fig, P.out_dir, "query_segments")
    fig = plots.zero_click_hist(stats)
    plots.save(fig, P.out_dir, "zero_click_rate")

# COMMAND ----------

display(tour.zero_click_queries(stats, n=P.top_n))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Key outputs
# MAGIC Checked and recorded in `out_dir/key_outputs.json` (the headless test reads it).

# COMMAND ----------

key_outputs(
    P.out_dir,
    files={"table_rows": tables_png, "label_grades": grades_png,
           **({"query_segments": segments_png} if segments_png else {})},
    values={"tables": int(len(counts)), "labels_rows": int(grades["pairs"].sum()),
            "quarantined": int(ingest["quarantined"].sum()), "segments": int(len(segments))},
)
