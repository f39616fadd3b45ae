"""Small, tested summaries and plots behind the notebooks (``notebooks/``): the notebooks only call these
and the stage modules, so no logic lives only in a notebook.

- ``tour``: table counts, ingest and quarantine summaries, label grades, query segments and zero-click.
- ``judging``: judgments joined with human labels, calibration, disagreements, the engagement audit.
- ``evaluation``: a run directory's analysis as tables, per-query wins and losses.
- ``plots``: matplotlib figures for the above, and ``save`` (PNG next to the notebook's outputs).

Everything reads tables driver-side with delta-rs (``Lakehouse.scan_frame``): no Spark session is needed
to explore, locally or on Databricks (where the lakehouse is a ``/Volumes/...`` or ``/dbfs/...`` path).
"""
