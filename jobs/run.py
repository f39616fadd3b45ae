"""The stage graph's entry point for clusters and schedulers: ``strata run`` with this job's argv.

``python jobs/run.py --profile cluster --out RUN_DIR`` runs the whole graph; ``--only STEP`` runs one step of
it (a Databricks task, an Airflow task, a Ray job), reading earlier steps' outputs from RUN_DIR/state.json.
"""

from _entry import run

if __name__ == "__main__":
    run("run")
