"""Run by a Python that has Apache Airflow (not the project's): ``python airflow_dagbag.py DAG_FILE OUT.json``.

Loads DAG_FILE with Airflow's own ``DagBag`` (the scheduler's parser) and writes what the test needs as JSON:
the import errors, and per DAG its schedule, catchup, max_active_runs and tasks (type, upstream ids,
retries, and ``bash_command`` rendered by Airflow's Jinja environment with a fixed logical date, the DAG's
params and ``var.value.get`` returning its default). Imports nothing from strata. Works with Airflow 2 and 3.
"""

from __future__ import annotations

import json
import sys


class _Value:
    @staticmethod
    def get(name, default=None):
        return default


class _Var:  # the template context's `var`, without an Airflow database
    value = _Value()


def main(dag_file: str, out_file: str) -> None:
    import airflow
    from airflow.models import DagBag

    bag = DagBag(dag_folder=dag_file)
    out: dict = {"airflow": airflow.__version__,
                 "import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        ctx = {"params": {k: dag.params[k] for k in dag.params}, "ds": "2026-01-02", "ds_nodash": "20260102",
               "ti": {"try_number": 1}, "var": _Var()}
        tt = dag.timetable
        out["dags"][dag_id] = {
            "schedule": getattr(tt, "expression", None) or getattr(tt, "_expression", None),
            "timetable": type(tt).__name__,
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "params": ctx["params"],
            "tasks": [{"task_id": t.task_id, "operator": f"{type(t).__module__}.{type(t).__name__}",
                       "upstream": sorted(t.upstream_task_ids), "retries": t.retries,
                       "bash_command": t.render_template(getattr(t, "bash_command", ""), ctx)}
                      for t in dag.tasks],
        }
    with open(out_file, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
