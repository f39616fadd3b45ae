"""`strata judge train | calibrate | audit` through a fresh Typer app with the module's register()."""

import json
import sys
from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from strata.commands.judge import register
from strata.sources.beir import BeirDataset, write_beir
from strata.tables import Lakehouse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judge"))
from judge_toys import _PRODUCTS, synthetic_pairs  # noqa: E402


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `judge` a sub-command even with one group
        pass

    return app


def _lakehouse(spark, root: Path) -> Lakehouse:
    lh = Lakehouse(root)
    pairs = synthetic_pairs(6)
    pairs["split"] = ["dev" if i % 5 == 0 else "train" for i in range(len(pairs))]
    labels = pairs.drop_duplicates(["query_norm", "product_id", "split"]).assign(raw_label="x")
    labels = labels.rename(columns={})[["source", "query", "query_norm", "product_id", "grade", "raw_label", "split"]]
    # labels keys (source, query_norm, product_id) must be unique: keep one split per pair
    labels = labels.drop_duplicates(["source", "query_norm", "product_id"])
    products = pd.DataFrame({"product_id": list(_PRODUCTS), "source": "toy", "title": list(_PRODUCTS.values()),
                             "description": None, "brand": None, "category_id": None,
                             "attributes": [[] for _ in _PRODUCTS]})
    lh.write(lh.to_spark(spark, "labels", labels), "labels")
    lh.write(lh.to_spark(spark, "products", products), "products")
    return lh


def test_train_then_calibrate_on_beir(spark, tmp_path):
    lh = _lakehouse(spark, tmp_path / "lh")
    runner = CliRunner()
    out = tmp_path / "judge"
    r = runner.invoke(_app(), ["judge", "train", "--lakehouse", str(lh.root), "--out", str(out), "--layers", "1",
                               "--max-pairs", "48", "--batch-size", "16", "--max-length", "32", "--threads", "1"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert summary["judge_id"].startswith("distilled-minilm@") and "dev" in summary
    assert (out / "calibration_dev.md").is_file()

    beir = BeirDataset(
        corpus={pid: {"title": t, "text": ""} for pid, t in _PRODUCTS.items()},
        queries={"q1": "cordless drill", "q2": "light bulb"},
        qrels={"q1": {"p1": 2, "p3": 1, "p4": 0}, "q2": {"p8": 2, "p9": 1, "p1": 0}}, split="test")
    write_beir(beir, tmp_path / "beir")
    calib = tmp_path / "calib.json"
    r = runner.invoke(_app(), ["judge", "calibrate", "--judge", str(out), "--dataset", str(tmp_path / "beir"),
                               "--out", str(calib)])
    assert r.exit_code == 0, r.output
    rep = json.loads(calib.read_text())
    for k in ("accuracy", "within1", "kappa", "majority_accuracy"):
        assert k in rep
    assert rep["n"] == 6 and len(rep["judge"]["confusion"]) == 3
    assert calib.with_suffix(".md").read_text().startswith("# Judge calibration")


def test_bad_inputs_fail_with_a_clear_message(tmp_path):
    runner = CliRunner()
    r = runner.invoke(_app(), ["judge", "calibrate", "--judge", str(tmp_path), "--dataset", str(tmp_path),
                               "--out", str(tmp_path / "c.json")])
    assert r.exit_code == 2 and "not a trained judge" in " ".join(r.output.split())
    r = runner.invoke(_app(), ["judge", "train", "--lakehouse", str(tmp_path / "nope"), "--out", str(tmp_path / "j")])
    assert r.exit_code == 2 and "labels and products" in " ".join(r.output.split())
    # a training knob out of range is refused before anything is read, naming the option
    r = runner.invoke(_app(), ["judge", "train", "--lakehouse", str(tmp_path / "nope"), "--out", str(tmp_path / "j"),
                               "--lr", "0"])
    assert r.exit_code == 2 and "--lr: Input should be greater than 0" in " ".join(r.output.split())


class _NoEngines:
    """Engines stand-in: `judge score` opens them lazily; these tests stop at the judging function."""

    def __init__(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _score_cli(monkeypatch, tmp_path, args, result):
    import strata.engines
    import strata.judge.runner as runner

    seen = {}

    def score(eng, lh, candidates, cfg, rid, use_ray=True, limit=None):
        seen["cfg"] = cfg
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(strata.engines, "Engines", _NoEngines)
    monkeypatch.setattr(runner, "score_candidates", score)
    r = CliRunner().invoke(_app(), ["judge", "score", "--lakehouse", str(tmp_path / "lh"), "--candidates", "labels",
                                    *args])
    return r, seen.get("cfg")


def test_score_fails_with_the_counts_when_the_judge_fails_too_often(monkeypatch, tmp_path):
    from strata.judge.job import JudgeFailures

    summary = {"judge_id": "vllm-m@1", "judged": 200, "failed": 7, "input_errors": 1, "error_share": 0.035,
               "max_error_share": 0.02}
    r, cfg = _score_cli(monkeypatch, tmp_path, ["--backend", "vllm", "--model", "org/m", "--max-error-share",
                                                "0.02", "--accelerator-type", "H100", "--actors", "2"],
                        JudgeFailures(summary))
    assert r.exit_code == 1
    out = " ".join(r.output.split())
    assert "failed on 7 of 200 pairs" in out and "0.0350 > max_error_share 0.02" in out and "rerun" in out
    assert json.loads(r.stdout[r.stdout.index("{"):r.stdout.rindex("}") + 1])["failed"] == 7
    assert (cfg.backend, cfg.model, cfg.max_error_share, cfg.accelerator_type, cfg.actors) == (
        "vllm", "org/m", 0.02, "H100", 2)


def test_score_offers_vllm_and_checks_its_options(monkeypatch, tmp_path):
    ok = {"judge_id": "vllm-m@1", "judged": 3, "failed": 0}
    r, cfg = _score_cli(monkeypatch, tmp_path, ["--backend", "vllm", "--model", "org/m"], ok)
    assert r.exit_code == 0, r.output
    assert cfg.backend == "vllm" and cfg.max_error_share == 0.01  # the config's default when not given
    r, cfg = _score_cli(monkeypatch, tmp_path, ["--backend", "vllm"], ok)
    assert r.exit_code == 2 and "--model is required for the vllm backend" in " ".join(r.output.split())
    r, cfg = _score_cli(monkeypatch, tmp_path, ["--backend", "vllm", "--model", "m", "--max-error-share", "2"], ok)
    assert r.exit_code == 2 and "--max-error-share" in r.output and cfg is None
