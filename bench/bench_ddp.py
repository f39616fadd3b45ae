"""Ray Train with two DDP workers (gloo) against one worker: same data, steps and global batch, on a finished run.

A run folder of ``strata run`` holds the lakehouse its training read (``training_examples``). Each variant is a
copy of that folder in which the graph's ``train-stage1``, ``train-stage2`` and ``evaluate`` steps run again with
one switch changed (``strata run --only`` through ``run_pipeline``):

- ``w1``: the run's own training settings, one worker;
- ``w1-seed``: the same with another seed: the noise floor a difference must clear;
- ``w2``: two workers, each with half the queries per batch (the same global batch) and half the CPUs.

Reported per variant: the stages' final loss (rank 0's moving average: with two workers it is over rank 0's half
of the batch, which has half the in-batch negatives, so it is lower by construction), examples/s, and the dev
nDCG@10 of the trained model, with the paired bootstrap of ``w2`` and ``w1-seed`` against ``w1`` on the same
queries.

    .venv/bin/python -m strata.cli run --profile demo --out runs/ddp-base
    .venv/bin/python bench/bench_ddp.py --run runs/ddp-base --work runs/ddp-bench --out bench/results/ddp.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

STEPS = ["train-stage1", "train-stage2", "evaluate"]
KEEP_OUT = ("train", "model", "runs", "report.html", "report.md", "metrics.json", "per_query.json",
            "analysis.json")  # what the variants redo


def variants(cfg) -> dict[str, list[str]]:
    t = cfg.train
    half1, half2 = t.stage1.queries_per_batch // 2, t.stage2.queries_per_batch // 2
    return {
        "w1": ["train.workers=1"],
        "w1-seed": ["train.workers=1", f"train.seed={t.seed + 100}"],
        "w2": ["train.workers=2", f"train.cpus_per_worker={t.cpus_per_worker / 2}",
               f"train.threads={max(1, t.threads // 2)}",
               f"train.stage1.queries_per_batch={half1}", f"train.stage2.queries_per_batch={half2}"],
    }


def run_variant(base: Path, work: Path, name: str, sets: list[str], config_file: Path, profile: str) -> dict:
    from strata.config import load_config
    from strata.pipeline.run import run_pipeline

    folder = work / name
    if not (folder / "done.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(base, folder, ignore=lambda d, names: [n for n in names if Path(d) == base and n in KEEP_OUT])
        cfg = load_config(profile, config_file, sets)
        t0 = time.perf_counter()
        run_pipeline(cfg, folder, only=STEPS)
        (folder / "done.json").write_text(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "set": sets}))
    from strata.pipeline.execute import State

    model = State(folder / "state.json").outputs("train-stage2")["model"]
    metrics = json.loads((folder / "metrics.json").read_text())["retrievers"]
    per_query = json.loads((folder / "per_query.json").read_text())
    train = json.loads((folder / "train" / "train.json").read_text())
    return {"set": sets, **json.loads((folder / "done.json").read_text()),
            "stages": [{k: s[k] for k in ("stage", "steps", "examples_per_s", "final_loss", "seconds")}
                       for s in train["stages"]],
            "ndcg@10": metrics[model]["ndcg@10"], "queries": metrics[model]["num_queries"],
            "per_query": per_query[model]["ndcg@10"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a finished `strata run` folder")
    ap.add_argument("--work", type=Path, required=True, help="where the variants' copies go (resumable)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ddp.json")
    ap.add_argument("--only", default="", help="comma-separated variants (default all)")
    a = ap.parse_args()

    from strata.config import load_config
    from strata.evaluate.significance import paired_bootstrap

    import yaml

    base = a.run.resolve()
    manifest = json.loads((base / "manifest.json").read_text())
    a.work.mkdir(parents=True, exist_ok=True)
    config_file = a.work / "run-config.yaml"
    config_file.write_text(yaml.safe_dump(manifest["config"]))
    profile = manifest["config"].get("profile", "demo")
    cfg = load_config(profile, config_file)
    todo = variants(cfg)
    if a.only:
        todo = {k: v for k, v in todo.items() if k in a.only.split(",")}
    results = {name: run_variant(base, a.work, name, sets, config_file, profile) for name, sets in todo.items()}
    cmp = {}
    if "w1" in results:
        for other in (n for n in results if n != "w1"):
            c = paired_bootstrap(results["w1"]["per_query"], results[other]["per_query"], metric="ndcg@10")
            cmp[f"{other} vs w1"] = {"delta": round(c.diff, 4), "ci95": [round(c.ci_low, 4), round(c.ci_high, 4)],
                                     "p_value_b_greater": round(c.p_value, 4), "queries": c.num_queries}
    for r in results.values():
        r.pop("per_query")
    out = {"benchmark": "ddp", "command": "bench/bench_ddp.py " + " ".join(sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "run": str(a.run), "run_git": manifest.get("git"), "variants": results, "comparisons": cmp}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: {"ndcg@10": v["ndcg@10"], "stages": v["stages"]} for k, v in results.items()}, indent=1))
    print(json.dumps(cmp, indent=1))


if __name__ == "__main__":
    main()
