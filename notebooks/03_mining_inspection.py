# Databricks notebook source
# MAGIC %md
# MAGIC # 03 Mining inspection
# MAGIC
# MAGIC What `strata mine run` wrote to `training_examples`: how the rows split over sources (human and
# MAGIC engagement seeds, judge-promoted positives, and the negative routes `ann`, `attribute_flip`,
# MAGIC `taxonomy_sibling`, `cousin`, `random`) and grades, how similar each source's products are to their
# MAGIC query under the mining encoder (mined negatives should sit higher than random ones, below the
# MAGIC positives), and one query's positives and mined negatives with their similarities.
# MAGIC
# MAGIC Parameters: `lakehouse` (default: the newest `runs/*/lakehouse`), `query` (default: the query with the
# MAGIC most mined rows), `catalog` (restrict to one catalog; default all), `out_dir`. The tables come from
# MAGIC `strata.mine.report.mining_report` / `summarize` and `strata.mine.inspect.query_examples`; the rest from
# MAGIC `strata.explore.mining`.

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

P = notebook_params(lakehouse="", query="", catalog="", out_dir="/tmp/strata-notebooks/03_mining_inspection")
P

# COMMAND ----------

import pandas as pd
from IPython.display import Markdown, display

from strata.explore import mining, plots
from strata.explore.evaluation import find_lakehouse
from strata.mine.inspect import query_examples
from strata.mine.report import mining_report, summarize
from strata.tables import Lakehouse

pd.set_option("display.max_colwidth", 80)
lh = Lakehouse(find_lakehouse(P.lakehouse))
if not lh.exists("training_examples"):
    raise FileNotFoundError(f"{lh.root}: no training_examples table; run `strata mine run` first")
examples = lh.read_arrow("training_examples").to_pandas()
if P.catalog:
    examples = examples[examples["catalog"] == P.catalog]
print(f"lakehouse: {lh.root}\n{len(examples):,} training examples, {examples['query_norm'].nunique():,} queries, "
      f"catalogs {sorted(examples['catalog'].unique())}, mining encoder {sorted(examples['model_id'].unique())}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Sources and grades
# MAGIC `share` is the source's share of all rows; `grade_*` counts rows per grade (2 exact, 1 partial,
# MAGIC 0 irrelevant); `judge_graded` how many rows carry the judge's verdict; the scores are the cosine of
# MAGIC query and product under the mining encoder. Per catalog: the share of each source.

# COMMAND ----------

report = mining_report(lh)
summary = summarize(examples) if P.catalog else report["overall"]
sources = mining.source_table(summary)
display(sources)
display(mining.catalog_table(report))
grades = mining.grade_distribution(examples)
display(grades)
fig = mining.grade_plot(sources)
grades_png = plots.save(fig, P.out_dir, "source_grades")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Similarity to the query per source
# MAGIC Hard negatives (ANN rank window, attribute flips, sibling and cousin categories) should be closer to
# MAGIC the query than random products, and, after the false-negative guard, not as close as the positives.

# COMMAND ----------

similarity = mining.similarity_by_source(examples)
display(similarity.round(4))
gap = mining.mined_minus_random(examples)
display(Markdown(f"**Median similarity, hard negatives minus random negatives:** "
                 f"{'n/a (no hard or no random negatives)' if gap is None else f'{gap:+.3f}'}"))
fig = mining.similarity_plot(examples)
similarity_png = plots.save(fig, P.out_dir, "similarity_by_source")

# COMMAND ----------

# MAGIC %md
# MAGIC ## One query's examples
# MAGIC Positives first, then negatives by source priority and similarity (`strata mine inspect`). `margin`
# MAGIC = the query's best positive similarity minus the row's: without a judge, negatives closer than the
# MAGIC absolute margin were dropped as likely unlabelled positives.

# COMMAND ----------

if P.query:
    catalog, query = P.catalog or None, P.query
else:
    top = mining.top_query(examples, P.catalog or None)
    if top is None:
        raise ValueError("no mined rows to inspect (only seeds in training_examples)")
    catalog, query = top
rows = query_examples(lh, query, catalog)
view = mining.example_view(rows)
display(Markdown(f"**{query!r}** ({catalog or 'all catalogs'}): {int((view['grade'] >= 1).sum())} positives, "
                 f"{int((view['grade'] == 0).sum())} negatives"))
display(view)
query_png = None
if not view.empty:
    fig = mining.query_plot(view, query)
    query_png = plots.save(fig, P.out_dir, "query_examples")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Key outputs

# COMMAND ----------

key_outputs(
    P.out_dir,
    files={"source_grades": grades_png, "similarity_by_source": similarity_png,
           **({"query_examples": query_png} if query_png else {})},
    values={"rows": int(len(examples)), "queries": int(examples["query_norm"].nunique()),
            "sources": int(len(sources)), "query": query, "query_rows": int(len(view)),
            **({"mined_minus_random": gap} if gap is not None else {})},
)
