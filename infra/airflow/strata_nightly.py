"""Airflow DAG ``strata_nightly``: the stage graph as one task per step, each a ``strata submit`` of the step
(``jobs/run.py --only STEP``) to the Ray cluster (Ray Jobs: the task follows the job's logs and fails when
the job fails, so Airflow's retries apply per stage).

Install on the Airflow workers: this package (``pip install strata-retrieval`` or the checkout) and
``ray[default]`` for the Jobs SDK. Copy this file into the DAGs folder. Configure with Airflow Variables
(Admin -> Variables) or trigger-time params: ``strata_ray_target`` (``ray://ray-head:10001`` or
``http://ray-head:8265``), the profile, and the lakehouse and run folders below, on storage every Ray node
mounts at the same path (the KubeRay manifests mount the ``strata-data`` volume at /mnt/strata). Secrets stay on the Ray
cluster: the tasks name them (``--env NAME``) and Ray reads the values there.

Works with Airflow 2.4+ and 3.x.
"""

from __future__ import annotations

from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, chain
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.baseoperator import chain
    from airflow.operators.bash import BashOperator

# The steps of the stage graph (the `cluster` profile's), in order; each task is `strata submit STEP`, i.e.
# `jobs/run.py --only STEP` on the night's run folder. Rendered by `strata infra render`.
# >>> strata infra render: steps
STEPS = ['ingest', 'devset', 'enrich', 'features', 'judge-train', 'mine', 'train-stage1', 'remine', 'train-stage2', 'evaluate', 'report']
# <<< strata infra render

SUBMIT = ("strata submit {step} "
          "--target {{{{ var.value.get('strata_ray_target', params.ray_target) }}}} --no-pip "
          "--submission-id strata-{step}-{{{{ ds_nodash }}}}-{{{{ ti.try_number }}}} "
          "--env STRATA_DATA --env STRATA_SPARK_REMOTE --env OPENAI_API_KEY -- "
          "--profile {{{{ params.profile }}}} --out {{{{ params.runs_root }}}}/{{{{ ds }}}} "
          "--set lakehouse.root={{{{ params.lakehouse }}}}")

default_args = {
    "owner": "strata",
    "retries": 2,
    "retry_delay": timedelta(minutes=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=6),
}

with DAG(
    dag_id="strata_nightly",
    description="Strata nightly: the stage graph, one task per step, on the Ray cluster",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    params={
        "ray_target": "ray://ray-head:10001",
        "profile": "cluster",
        "lakehouse": "/mnt/strata/prod/lakehouse",
        "runs_root": "/mnt/strata/prod/runs",
    },
    render_template_as_native_obj=False,
    tags=["strata"],
) as dag:
    tasks = [BashOperator(task_id=step, bash_command=SUBMIT.format(step=step)) for step in STEPS]
    chain(*tasks)
