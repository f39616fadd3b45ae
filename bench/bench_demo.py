"""A profile end to end at two precisions: wall time per step and quality, fp32 against the profile's ``auto``.

Runs ``strata run --profile demo`` twice, each into its own folder under ``--work`` with a cold embedding
cache: once with every precision knob at fp32 (``embed.backend=torch``, ``train.precision=fp32``,
``judge_train.precision=fp32``: the demo before bf16) and once as the profile ships (``auto``: bf16 where the
CPU computes it natively). A run that already finished under ``--work`` is reused (resumable). Then it compares
the two runs' step times (the manifests) and, query by query, the fine-tuned model's nDCG@10 on the demo's dev
queries (paired bootstrap), plus the off-the-shelf model's (which only the inference precision changes).

    .venv/bin/python bench/bench_demo.py --work runs/bench-demo --out bench/results/demo_precision.json

``--profile local --variants auto`` times the product recipe alone (hours on 2 cores): its step times, wall
time and dev metrics, with no fp32 run beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

VARIANTS = {
    "fp32": ["embed.backend=torch", "train.precision=fp32", "judge_train.precision=fp32"],
    "auto": [],  # the demo profile as shipped
}


def finished(run: Path) -> bool:
    m = run / "manifest.json"
    return m.is_file() and json.loads(m.read_text()).get("status") == "succeeded"


def launch(run: Path, sets: list[str], profile: str) -> None:
    """One run in its own folder; its embedding cache lives there too, so each run starts cold."""
    run.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).with_name("strata")), "run", "--profile", profile, "--out", str(run),
           "--set", f"embed.cache_dir={run / 'embed-cache'}"]
    for s in sets:
        cmd += ["--set", s]
    with (run.parent / f"{run.name}.log").open("w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def wall(run: Path) -> float:
    m = json.loads((run / "manifest.json").read_text())
    t = [datetime.fromisoformat(m[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at")]
    return (t[1] - t[0]).total_seconds()


def model_key(per_query: dict) -> str:
    """The fine-tuned model's entry (named by its path) among the retrievers."""
    keys = [k for k in per_query if k.endswith("/model") and ":" not in k]  # not rerank:/hybrid: of it
    if len(keys) != 1:
        raise ValueError(f"expected one fine-tuned model among {list(per_query)}")
    return keys[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-demo")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "demo_precision.json")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--variants", default="fp32,auto", help="comma-separated, of: " + ", ".join(VARIANTS))
    args = ap.parse_args()
    names = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown or not names:
        ap.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")

    from strata.evaluate.significance import paired_bootstrap

    for name in names:
        if not finished(args.work / name):
            print(f"running profile {args.profile} ({name}) into {args.work / name}", flush=True)
            launch(args.work / name, VARIANTS[name], args.profile)
    runs = {n: args.work / n for n in names}
    res: dict = {"benchmark": f"{args.profile}_precision", "profile": args.profile, "date": time.strftime("%Y-%m-%d"),
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
                 "command": "python bench/bench_demo.py " + " ".join(sys.argv[1:]), "variants": {}}
    per_query = {}
    for n, run in runs.items():
        m = json.loads((run / "manifest.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())["retrievers"]
        pq = json.loads((run / "per_query.json").read_text())
        key = model_key(pq)
        per_query[n] = {"model": pq[key]["ndcg@10"], "baseline": pq["baseline"]["ndcg@10"]}  # metric -> query -> v
        steps = {k: v for k, v in m["timings_seconds"].items() if "." not in k}  # steps, not retriever parts
        res["variants"][n] = {
            "sets": VARIANTS[n], "wall_seconds": round(wall(run)), "step_seconds": steps,
            "git": m.get("git"),
            "config": {"embed.backend": m["config"]["embed"].get("backend", "torch"),
                       "train.precision": m["config"]["train"].get("precision", "fp32"),
                       "judge_train.precision": m["config"]["judge_train"].get("precision", "fp32")},
            "ndcg@10": {r if r in ("baseline", "bm25", "hybrid") else r.replace(key, "fine-tuned"):
                        round(v["ndcg@10"], 4) for r, v in metrics.items()},
        }
    if set(runs) != {"fp32", "auto"}:
        write(args.out, res)
        return
    a, b = res["variants"]["fp32"], res["variants"]["auto"]
    res["speedup_wall"] = round(a["wall_seconds"] / b["wall_seconds"], 2)
    res["speedup_by_step"] = {s: round(a["step_seconds"][s] / b["step_seconds"][s], 2)
                              for s in a["step_seconds"] if b["step_seconds"].get(s)}
    for which in ("model", "baseline"):
        c = paired_bootstrap(per_query["fp32"][which], per_query["auto"][which], metric="ndcg@10")
        res[f"auto_vs_fp32_{which}"] = {"diff": round(c.diff, 4), "ci95": [round(c.ci_low, 4), round(c.ci_high, 4)]}
    write(args.out, res)


def write(out: Path, res: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
