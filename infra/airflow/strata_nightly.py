"""Airflow DAG ``strata_nightly``: the nightly refresh as one task per stage, each a ``strata submit`` of
the stage's jobs/ entry point to the Ray cluster (Ray Jobs: the task follows the job's logs and fails when
the job fails, so Airflow's retries apply per stage).

Install on the Airflow workers: this package (``pip install strata-retrieval`` or the checkout) and
``ray[default]`` for the Jobs SDK. Copy this file into the DAGs folder. Configure with Airflow Variables
(Admin -> Variables) or trigger-time params: ``strata_ray_target`` (``ray://ray-head:10001`` or
``http://ray-head:8265``) and the table/model paths below, on storage every Ray node mounts at the same
path (the KubeRay manifests mount the ``strata-data`` volume at /mnt/strata). Secrets stay on the Ray
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

# (stage, the stage's own options) in run order; `strata submit STAGE` runs jobs/<stage>.py on the cluster.
STAGES = [
    ("ingest", "--source {{ params.ingest_source }} --path {{ params.ingest_path }}/{{ ds }} "
               "--lakehouse {{ params.lakehouse }}"),
    ("features", "--lakehouse {{ params.lakehouse }}"),
    ("judge", "--lakehouse {{ params.lakehouse }} --candidates labels --judge {{ params.judge_dir }}"),
    ("mine", "--lakehouse {{ params.lakehouse }} --judge {{ params.judge_dir }}"),
    ("train", "--lakehouse {{ params.lakehouse }} --out {{ params.models_root }}/{{ ds }}"),
    ("evaluate", "--dataset {{ params.beir_dir }} --model baseline --model bm25 "
                 "--model {{ params.models_root }}/{{ ds }}/model "
                 "--out {{ params.runs_root }}/{{ ds }}/metrics.json"),
]

SUBMIT = ("strata submit {stage} "
          "--target {{{{ var.value.get('strata_ray_target', params.ray_target) }}}} --no-pip "
          "--submission-id strata-{stage}-{{{{ ds_nodash }}}}-{{{{ ti.try_number }}}} "
          "--env STRATA_DATA --env STRATA_SPARK_REMOTE --env OPENAI_API_KEY -- {args}")

default_args = {
    "owner": "strata",
    "retries": 2,
    "retry_delay": timedelta(minutes=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=6),
}

with DAG(
    dag_id="strata_nightly",
    description="Strata nightly: ingest -> features -> judge -> mine -> train -> evaluate on the Ray cluster",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    params={
        "ray_target": "ray://ray-head:10001",
        "lakehouse": "/mnt/strata/prod",
        "ingest_source": "bestbuy-small",
        "ingest_path": "/mnt/strata/landing/search_logs",
        "judge_dir": "/mnt/strata/prod/models/judge",
        "models_root": "/mnt/strata/prod/models/retriever",
        "beir_dir": "/mnt/strata/prod/beir/homedepot-dev",
        "runs_root": "/mnt/strata/prod/runs",
    },
    render_template_as_native_obj=False,
    tags=["strata"],
) as dag:
    tasks = [BashOperator(task_id=stage, bash_command=SUBMIT.format(stage=stage, args=args))
             for stage, args in STAGES]
    chain(*tasks)
