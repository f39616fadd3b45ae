"""`strata report` and `strata compare` through a fresh Typer app with the module's register()."""

import json
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from strata.commands.evaluate import register

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from eval_toys import make_run_dir  # noqa: E402


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_report_and_compare(tmp_path):
    runner = CliRunner()
    champ = make_run_dir(tmp_path / "champ", quality_dense=0.2, quality_bm25=0.1)
    chall = make_run_dir(tmp_path / "chall", quality_dense=3.0, quality_bm25=0.1, seed=7)
    r = runner.invoke(_app(), ["report", str(chall), "--against", str(champ), "--no-separation"])
    assert r.exit_code == 0, r.output
    assert (chall / "report.html").is_file() and (chall / "report.md").is_file()
    assert "Against run" in (chall / "report.html").read_text()

    same = runner.invoke(_app(), ["compare", str(champ), str(champ), "--metric", "ndcg@10", "--json"])
    assert same.exit_code == 1, same.output
    assert json.loads(same.stdout)["promote"] is False

    better = runner.invoke(_app(), ["compare", str(champ), str(chall), "--metric", "ndcg@10",
                                    "--retriever-a", "baseline", "--retriever-b", "baseline", "--alpha", "0.1"])
    assert better.exit_code == 0, better.output
    assert "PROMOTE" in better.stdout

    bad = runner.invoke(_app(), ["compare", str(champ), str(chall), "--retriever-b", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_report_on_an_external_beir_folder(tmp_path):
    """`strata eval --out DIR/metrics.json --runs-out DIR/runs` on a public BEIR dataset, then report."""
    run = make_run_dir(tmp_path / "ext")
    (run / "beir" / "toy-dev").rename(tmp_path / "public-beir")
    r = CliRunner().invoke(_app(), ["report", str(run), "--beir", str(tmp_path / "public-beir"),
                                    "--no-separation"])
    assert r.exit_code == 0, r.output
    assert "hybrid" in (run / "report.md").read_text()
