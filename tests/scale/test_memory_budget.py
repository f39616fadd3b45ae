"""Memory discipline (issue 10): the features, embed and mining stages stream, so a larger catalog costs them
(almost) no more driver memory, while the full-table-in-memory version of the same read grows with the table.

Input: the real Best Buy small catalog, taxonomy and search log, with the products replicated under new ids to
TINY = 100, SMALL = 300 and LARGE = 1,500 rows whose descriptions are 30,000 characters of real catalog text
each (tests/scale/synth.py), written in row groups of 100 rows. LARGE holds 36 MB more text than SMALL. Any
scan (Spark's or delta-rs') decodes a row group at a time, so a streaming stage's memory is bounded by the row
group, which is how the table was written: a table Sail writes in one go is one row group per file.

Each measurement is a child process (tests/scale/stage_memory.py: embedded Sail Spark server + local Ray, as a
run has) that runs the stages on TINY (warm-up: engines' pools, libraries, the first actor), then on SMALL in
one child and on LARGE in the other. Growth = the LARGE child's peak minus the SMALL child's peak over that
second pass: what the extra 1,200 products cost, between two processes with the same history. The budget is
on the driver's anonymous memory (RssAnon: heap and allocator arenas, where any collected row lands; the
driver holds the Sail server, so Spark's own buffers count). The Ray object store's pages and mapped files
are reported, not budgeted; so are the Ray workers (an actor holds the model and one block by construction).

- streaming stages (embed.stream_rows = 300 products a step): growth must stay under ``BUDGET_MB``.
- the full-table version (the catalog's rows collected with toPandas, then one text per product: what
  embed/stage.py and mine/job.py did before) measured the same way must exceed ``BUDGET_MB`` — so the budget
  is one the old code would break, and the test can fail.

Why two processes: comparing a first pass on SMALL with a second pass on LARGE in one process measured the
second pass as much as the input (a second pass over SMALL alone grew anonymous memory by ~150 MB). Measured
this way on 2 cores, streaming growth came to 88-142 MB and full-table growth to 275-391 MB over five runs
(git history of this file has them): ``BUDGET_MB`` sits between the two. The test takes 3.5-4 minutes, most of
it embedding LARGE.
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

TINY, SMALL, LARGE, DESC_CHARS = 100, 300, 1500, 30_000
BUDGET_MB = 220


def _child(out: Path, warm: Path, main: Path, *steps: str) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / "stage_memory.py"), str(out), str(warm), str(main), *steps],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def lakehouses(data_root, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scale")
    out = {}
    for n, name in ((TINY, "tiny_s"), (TINY, "tiny_l"), (SMALL, "small"), (LARGE, "large")):
        # one warm-up copy per child: each lakehouse has its own embedding cache, so both warm-ups embed
        write_bestbuy_lakehouse(root / name / "lh", data_root, products=n, desc_chars=DESC_CHARS, file_rows=300,
                                group_rows=100)
        out[name] = root / name / "lh"
    return out


def _growth(lakehouses: dict[str, Path], tmp: Path, *steps: str) -> tuple[float, dict, dict]:
    """(anonymous-memory growth MB, SMALL child's result, LARGE child's result) for ``steps``."""
    tag = "_".join(steps)
    small = _child(tmp / f"{tag}_small.json", lakehouses["tiny_s"], lakehouses["small"], *steps)
    large = _child(tmp / f"{tag}_large.json", lakehouses["tiny_l"], lakehouses["large"], *steps)
    return round(large["peak_driver_anon_mb"] - small["peak_driver_anon_mb"], 1), small, large


def test_stages_stream_under_a_budget_the_full_table_version_exceeds(lakehouses, tmp_path):
    stages, s_small, s_large = _growth(lakehouses, tmp_path, "features", "embed", "mine")
    full, f_small, f_large = _growth(lakehouses, tmp_path, "full_read")
    report = {"budget_mb": BUDGET_MB, "stages_growth_anon_mb": stages, "full_table_growth_anon_mb": full,
              "full_table_text_mb": {"small": f_small["full_read_text_mb"], "large": f_large["full_read_text_mb"]},
              "stages_growth_rss_mb": round(s_large["peak_driver_mb"] - s_small["peak_driver_mb"], 1),
              "full_table_growth_rss_mb": round(f_large["peak_driver_mb"] - f_small["peak_driver_mb"], 1),
              "stages": {"small": s_small["main"], "large": s_large["main"]},
              "full_table": {"small": f_small["main"], "large": f_large["main"]}}
    print(json.dumps(report, indent=2))
    assert set(s_large["main"]) == {"features", "embed", "mine"}
    assert full > BUDGET_MB, report  # the budget is one the full-table version breaks
    assert stages < BUDGET_MB, report
