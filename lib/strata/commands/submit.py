"""``strata submit STEP|all|refresh --target ray://HEAD | http://HEAD:8265 | databricks | spark-submit [-- STAGE ARGS]``.

Wired into the CLI by ``register(app)``; the logic is in ``strata.ops.submit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(stderr=True)

_CTX = {"allow_extra_args": True, "ignore_unknown_options": True}


def register(app: typer.Typer) -> None:
    app.command("submit", context_settings=_CTX)(submit)


def _fail(msg: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(code)


def submit(
    stage: str = typer.Argument(..., help="a step of the graph (`strata run --plan` lists them), `all` (the whole "
                                "graph) or `refresh`"),
    stage_args: Optional[list[str]] = typer.Argument(None, help="options of `strata run` / `strata refresh`, "
                                                     "after `--` (e.g. -- --profile cluster --out RUN_DIR)"),
    target: str = typer.Option(..., "--target", "-t", help="ray://HEAD[:10001] | http(s)://HEAD:8265 | "
                               "databricks | spark-submit"),
    env: Optional[list[str]] = typer.Option(
        None, "--env", help="forward this env var by NAME (repeatable; Ray reads the value on the cluster). "
        "Default: STRATA_DATA, STRATA_SPARK_REMOTE, HF_HUB_OFFLINE"),
    wheel: Optional[Path] = typer.Option(None, "--wheel", help="ray: ship this built wheel instead of lib/"),
    pip: bool = typer.Option(True, "--pip/--no-pip", help="ray: install pyproject requirements in the job "
                             "(--no-pip when the cluster image has them)"),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="ray: stream the job's logs until it ends"),
    dashboard_port: int = typer.Option(8265, "--dashboard-port", help="ray://HOST: the job server port"),
    submission_id: Optional[str] = typer.Option(None, "--submission-id", help="ray: fixed job id (idempotent)"),
    repo: Optional[Path] = typer.Option(None, "--repo", help="checkout to ship (default: this one)"),
    bundle_target: str = typer.Option("dev", "--bundle-target", help="databricks: bundle target dev | prod"),
    param: Optional[list[str]] = typer.Option(None, "--param", help="databricks: job parameter KEY=VALUE"),
    master: Optional[str] = typer.Option(None, "--master", help="spark-submit: --master"),
    deploy_mode: Optional[str] = typer.Option(None, "--deploy-mode", help="spark-submit: client | cluster"),
    conf: Optional[list[str]] = typer.Option(None, "--conf", help="spark-submit: KEY=VALUE (repeatable)"),
) -> None:
    """Run one step of the graph (`jobs/run.py --only STEP`), the whole graph or the refresh on a cluster: Ray
    Jobs (prints the job id, follows the logs), a Databricks bundle job, or spark-submit. Exit 0 when the job
    succeeded."""
    from strata.ops import submit as ops

    args = list(stage_args or [])
    try:
        tgt = ops.parse_target(target, dashboard_port)
        ops.stage_command(stage)
        if tgt.kind == "ray":
            sub = ops.ray_submission(
                stage, args, repo=repo or ops.REPO, wheel=wheel, pip=pip,
                env_names=ops.DEFAULT_ENV_NAMES if env is None else env, submission_id=submission_id,
            )
            job_id, status = ops.submit_ray(tgt.address, sub, follow=follow)
            console.print(f"job {job_id}: {status}")
            raise typer.Exit(0 if status in ("SUCCEEDED", "SUBMITTED") else 1)
        if tgt.kind == "databricks":
            if args:
                _fail("databricks: stage options come from the bundle; override its job parameters with "
                      "--param KEY=VALUE")
            params = {}
            for p in param or []:
                if "=" not in p:
                    _fail(f"--param {p!r}: expected KEY=VALUE")
                k, v = p.split("=", 1)
                params[k] = v
            raise typer.Exit(0 if ops.submit_databricks(stage, bundle_target, params) == 0 else 1)
        rc = ops.submit_spark(stage, args, repo=repo or ops.REPO, master=master, deploy_mode=deploy_mode,
                              conf=conf or [])
        raise typer.Exit(0 if rc == 0 else 1)
    except ops.SubmitError as e:
        _fail(str(e))
