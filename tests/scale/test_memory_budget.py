"""Memory discipline (issue 10): the features, embed and mining stages stream, so a larger catalog costs them
(almost) no more driver memory, while the full-table-in-memory version of the same read grows with the table.

Input: the real Best Buy small catalog, taxonomy and search log, with the products replicated under new ids to
SMALL = 300 and LARGE = 1,500 rows whose descriptions are 30,000 characters of real catalog text each
(tests/scale/synth.py), written in row groups of 100 rows. LARGE holds 36 MB more text than SMALL. Any scan
(Spark's or delta-rs') decodes a row group at a time, so a streaming stage's memory is bounded by the row group,
which is how the table was written: a table Sail writes in one go is one row group per file.

In one child process (tests/scale/stage_memory.py: embedded Sail Spark server + local Ray, as a run has), the
stages run on SMALL (warm-up: engines' pools, libraries, the first actor), then on LARGE. Growth = the
driver's peak RSS on LARGE minus its peak on SMALL: what the extra 1,200 products cost. The driver process
holds the Sail server, so Spark's own buffers count; Ray workers (the embedding actors) are reported, not
budgeted (an actor holds the model and one block by construction; the object store is Ray's own bounded,
spilling store).

- streaming stages (embed.stream_rows = 300 products a step): growth must stay under ``BUDGET_MB``.
- the full-table version (the catalog's rows collected with toPandas, then one text per product: what
  embed/stage.py and mine/job.py did before) run the same way must exceed ``BUDGET_MB`` — so the budget is
  one the old code would break, and the test can fail.

Measured on 2 cores (other jobs running), three runs: streaming 157, 161 and 133 MB; full-table 400, 336 and
402 MB (45 MB of text collected). The budget sits between, with room on both sides. The test takes 2.5-4 minutes
there, most of it embedding LARGE (per-step Ray Data start-up included).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from synth import write_bestbuy_lakehouse  # noqa: E402

pytestmark = pytest.mark.integration

SMALL, LARGE, DESC_CHARS = 300, 1500, 30_000
BUDGET_MB = 230


def _child(out: Path, small: Path, large: Path, *steps: str) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / "stage_memory.py"), str(out), str(small), str(large), *steps],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def lakehouses(data_root, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("scale")
    for n, name in ((SMALL, "small"), (LARGE, "large")):
        write_bestbuy_lakehouse(root / name / "lh", data_root, products=n, desc_chars=DESC_CHARS, file_rows=300,
                                group_rows=100)
    return root / "small" / "lh", root / "large" / "lh"


def test_stages_stream_under_a_budget_the_full_table_version_exceeds(lakehouses, tmp_path):
    small, large = lakehouses
    stages = _child(tmp_path / "stages.json", small, large, "features", "embed", "mine")
    full = _child(tmp_path / "full.json", small, large, "full_read")
    report = {"budget_mb": BUDGET_MB, "stages_growth_mb": stages["growth_driver_mb"],
              "full_table_growth_mb": full["growth_driver_mb"], "full_table_text_mb": full["full_read_text_mb"],
              "stages": {k: stages[k] for k in ("small", "large")}}
    print(json.dumps(report, indent=2))
    assert set(stages["large"]) == {"features", "embed", "mine"}
    assert full["growth_driver_mb"] > BUDGET_MB, report  # the budget is one the full-table version breaks
    assert stages["growth_driver_mb"] < BUDGET_MB, report
