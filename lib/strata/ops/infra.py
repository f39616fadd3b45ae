"""``strata infra render``: the parts of infra/ and docs/ that follow from the stage graph, written from it.

Each generated part sits between two marker lines in its file (``>>> strata infra render: NAME`` and
``<<< strata infra render``, as comments of the file's language); everything outside the markers is edited
by hand. The nightly job's tasks (Databricks), the DAG's steps (Airflow), the RayJobs' entrypoints (KubeRay)
and the graph table of docs/architecture.md are rendered for the ``cluster`` profile (docs: ``local``), so a
step added to the graph reaches every scheduler with one command, and ``--check`` (run by the tests) fails
when a checked-in file drifts from the graph.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from strata.pipeline.graph import GRAPH, active

REPO = Path(__file__).resolve().parents[3]
BEGIN, END = ">>> strata infra render: ", "<<< strata infra render"
INFRA_PROFILE = "cluster"

# Where a Databricks task finds the graph's state and tables (job parameters; defaults in databricks.yml).
_DB_ARGS = ["--profile", "{{job.parameters.profile}}",
            "--out", "{{job.parameters.runs_root}}/{{job.start_time.iso_date}}",
            "--set", "lakehouse.root={{job.parameters.lakehouse}}"]
_KUBE_ROOT = "/mnt/strata/prod"


def _gpu_faiss() -> str:
    """The GPU FAISS requirement of pyproject's [gpu] extra (the wheel carries no FAISS build)."""
    import tomllib

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    return next(r for r in extra if r.startswith("faiss-gpu"))


# The GPU cluster's tasks add the GPU FAISS build to the wheel.
_GPU_LIBS = ["      - pypi:", f"          package: {_gpu_faiss()}"]


class InfraDrift(RuntimeError):
    """A checked-in file differs from what the graph renders."""


def _cfg(profile: str):
    from strata.config import load_config

    return load_config(profile)


def _yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def databricks_nightly(indent: str) -> list[str]:
    """The nightly job's parameters and one task per active step, each after the one before."""
    steps = active(_cfg(INFRA_PROFILE), "run")
    out = ["parameters:",
           "  - name: profile", "    default: ${var.profile}",
           "  - name: lakehouse", "    default: ${var.lakehouse}",
           "  - name: runs_root", "    default: ${var.runs_root}",
           "tasks:"]
    prev = None
    for s in steps:
        out.append(f"  - task_key: {s.task_key}")
        out.append(f"    description: {json.dumps(s.doc)}")
        if prev:
            out += ["    depends_on:", f"      - task_key: {prev}"]
        ray = s.cluster == "ray_gpu"
        out += [f"    job_cluster_key: {s.cluster}",
                f"    max_retries: {1 if ray else 2}",
                f"    min_retry_interval_millis: {600000 if ray else 300000}",
                "    spark_python_task:",
                "      python_file: ../../../jobs/run.py",
                f"      parameters: {_yaml_list([*_DB_ARGS, '--only', s.name])}",
                "    libraries:", "      - whl: ../../../dist/*.whl", *(_GPU_LIBS if ray else [])]
        prev = s.task_key
    return [indent + line for line in out]


def databricks_refresh(indent: str) -> list[str]:
    out = ["parameters:",
           "  - name: profile", "    default: ${var.profile}",
           "  - name: lakehouse", "    default: ${var.lakehouse}",
           "  - name: state_dir", "    default: ${var.state_dir}",
           "tasks:",
           "  - task_key: refresh",
           "    job_cluster_key: ray_gpu",
           "    max_retries: 1",
           "    min_retry_interval_millis: 600000",
           "    spark_python_task:",
           "      python_file: ../../../jobs/refresh.py",
           "      parameters: " + _yaml_list(["--profile", "{{job.parameters.profile}}",
                                               "--out", "{{job.parameters.state_dir}}",
                                               "--lakehouse", "{{job.parameters.lakehouse}}"]),
           "    libraries:", "      - whl: ../../../dist/*.whl", *_GPU_LIBS]
    return [indent + line for line in out]


def airflow_steps(indent: str) -> list[str]:
    names = [s.name for s in active(_cfg(INFRA_PROFILE), "run")]
    return [f"{indent}STEPS = {names!r}"]


def kuberay_refresh(indent: str) -> list[str]:
    return [f"{indent}entrypoint: python /home/ray/strata/jobs/refresh.py --profile {INFRA_PROFILE} "
            f"--out {_KUBE_ROOT}/state --lakehouse {_KUBE_ROOT}/lakehouse"]


def kuberay_step(name: str) -> Callable[[str], list[str]]:
    def render(indent: str) -> list[str]:
        return [f"{indent}entrypoint: python /home/ray/strata/jobs/run.py --profile {INFRA_PROFILE} "
                f"--out {_KUBE_ROOT}/runs/nightly --set lakehouse.root={_KUBE_ROOT}/lakehouse --only {name}"]
    return render


def architecture_graph(indent: str) -> list[str]:
    """docs/architecture.md's table of the graph: what each step does, where it lives, what it reads and
    writes, and which profiles run it."""
    cfgs = {p: _cfg(p) for p in ("demo", "local", "cluster")}
    rows = ["| step | what | lives in | engines | reads | writes | demo | local | cluster |",
            "|---|---|---|---|---|---|---|---|---|"]
    for s in GRAPH:
        on = []
        for p, c in cfgs.items():
            why = s.off_reason(c, "refresh" if s.tail else "run")
            on.append("refresh" if s.tail and why is None else ("yes" if why is None else "-"))
        rows.append(f"| `{s.name}` | {s.doc} | `{s.stage.replace(':', '.')}` | {', '.join(sorted(s.engines)) or 'driver'} "
                    f"| {', '.join(s.reads) or '-'} | {', '.join(s.writes) or '-'} | {' | '.join(on)} |")
    return [indent + r if r else r for r in rows]


# file (relative to the repo) -> block name -> renderer(indent) -> lines
BLOCKS: dict[str, dict[str, Callable[[str], list[str]]]] = {
    "infra/databricks/resources/strata_nightly.yml": {"nightly": databricks_nightly},
    "infra/databricks/resources/strata_refresh.yml": {"refresh": databricks_refresh},
    "infra/airflow/strata_nightly.py": {"steps": airflow_steps},
    "infra/kuberay/rayjob-refresh.yaml": {"entrypoint": kuberay_refresh},
    "infra/kuberay/rayjob-step.yaml": {"entrypoint": kuberay_step("judge-train")},
    "docs/architecture.md": {"graph": architecture_graph},
}

_MARK = re.compile(r"^(?P<indent>\s*)(?:#|<!--)\s*" + re.escape(BEGIN) + r"(?P<name>[\w-]+)")


def render_text(text: str, blocks: dict[str, Callable[[str], list[str]]], path: str = "") -> str:
    """``text`` with every marked block replaced by its renderer's lines (same indentation as the marker)."""
    lines, out, seen = text.splitlines(), [], set()
    i = 0
    while i < len(lines):
        m = _MARK.match(lines[i])
        out.append(lines[i])
        i += 1
        if not m:
            continue
        name = m.group("name")
        if name not in blocks:
            raise InfraDrift(f"{path}: unknown block {name!r} (have {', '.join(blocks)})")
        while i < len(lines) and END not in lines[i]:
            i += 1
        if i == len(lines):
            raise InfraDrift(f"{path}: block {name!r} has no end marker ({END!r})")
        out += blocks[name](m.group("indent"))
        out.append(lines[i])
        i += 1
        seen.add(name)
    missing = set(blocks) - seen
    if missing:
        raise InfraDrift(f"{path}: no marker for block(s) {sorted(missing)}")
    return "\n".join(out) + "\n"


def render(repo: Path = REPO, check: bool = False) -> list[str]:
    """Render every block in place (``check``: write nothing, raise ``InfraDrift`` naming the files that
    differ). Returns the files that changed (or would change)."""
    changed = []
    for rel, blocks in BLOCKS.items():
        path = Path(repo) / rel
        old = path.read_text(encoding="utf-8")
        new = render_text(old, blocks, rel)
        if new != old:
            changed.append(rel)
            if not check:
                path.write_text(new, encoding="utf-8")
    if check and changed:
        raise InfraDrift("out of date with the stage graph (run `strata infra render`): " + ", ".join(changed))
    return changed
