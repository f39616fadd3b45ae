"""Every notebook in notebooks/ runs headless, cell by cell, on a small slice of the real data.

Generic over ``notebooks/*.py``: a new notebook is covered by adding its file. Each must be Databricks
source format, take its parameters through ``notebook_params`` (with an ``out_dir``), show at least one
plot, and end with ``key_outputs(...)``, whose record (``out_dir/key_outputs.json``) is checked here:
every declared file exists and is non-empty, every declared value is set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strata.notebook import HEADER, KEY_OUTPUTS_FILE, execute, parse_source

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9]*.py"))
IDS = [p.stem for p in NOTEBOOKS]

# Optional extra expectations per notebook (a new notebook needs no entry): declared files / values.
EXPECT = {
    "01_data_tour": {"files": {"table_rows", "label_grades", "query_segments"},
                     "values": {"tables", "labels_rows", "segments"}},
    "02_judge_calibration": {"files": {"confusion"}, "values": {"judge_id", "pairs", "accuracy", "kappa"}},
    "03_mining_inspection": {"files": {"source_grades", "similarity_by_source", "query_examples"},
                             "values": {"rows", "sources", "query", "query_rows", "mined_minus_random"}},
    "04_training": {"files": {"training_curves", "stages", "stage_comparison"},
                    "values": {"stages", "steps", "logged_points", "final_loss", "best_ndcg10"}},
    "05_evaluation_report": {"files": {"query_deltas", "slices"}, "values": {"best", "retrievers"}},
}


def test_there_are_notebooks():
    assert {"01_data_tour", "02_judge_calibration", "03_mining_inspection", "04_training",
            "05_evaluation_report"} <= set(IDS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_databricks_source_with_params_and_key_outputs(path):
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == HEADER
    cells = parse_source(text, str(path))
    assert cells[0].cell_type == "markdown", "first cell: a %md title and what the notebook shows"
    code = [c.source for c in cells if c.cell_type == "code"]
    assert any("notebook_params(" in c and "out_dir=" in c for c in code), "parameters via notebook_params"
    assert code[-1].lstrip().startswith("key_outputs("), "last cell must record key_outputs(...)"


@pytest.mark.integration
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_headless_and_produces_its_key_outputs(path, notebook_inputs, tmp_path):
    out_dir = tmp_path / path.stem
    params = {**notebook_inputs, "out_dir": str(out_dir)}
    nb = execute(path, params, out=tmp_path / f"{path.stem}.ipynb", timeout=300)  # raises on any cell error

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "the notebook shows no plot"

    rec = json.loads((out_dir / KEY_OUTPUTS_FILE).read_text())
    assert rec["files"] or rec["values"]
    for name, f in rec["files"].items():
        p = Path(f)
        assert p.is_file() and p.stat().st_size > 0, name
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    for name, v in rec["values"].items():
        assert v is not None, name
    exp = EXPECT.get(path.stem, {})
    assert exp.get("files", set()) <= set(rec["files"]), set(exp["files"]) - set(rec["files"])
    assert exp.get("values", set()) <= set(rec["values"]), set(exp["values"]) - set(rec["values"])
    if path.stem == "02_judge_calibration":
        assert rec["values"]["pairs"] > 0 and 0.0 <= rec["values"]["accuracy"] <= 1.0
    if path.stem == "05_evaluation_report":
        assert rec["values"]["retrievers"] >= 2
