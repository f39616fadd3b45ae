"""report.html / report.md from a tiny run dir; report.html rendered by headless Chromium."""

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from eval_toys import fake_encode, make_run_dir  # noqa: E402

from strata.evaluate.analysis import analyze_run_dir, load_analysis  # noqa: E402
from strata.pipeline.report import ANALYSIS_BEGIN, write_analysis_reports  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    run_dir = make_run_dir(tmp_path_factory.mktemp("run"))
    (run_dir / "report.md").write_text("# Strata run\n\n## Retrieval quality\n\nold table\n")
    (run_dir / "training_curves.json").write_text(json.dumps({"step": [1, 2, 3], "loss": [1.0, 0.6, 0.4]}))
    analyze_run_dir(run_dir, encode_fns={"baseline": fake_encode}, n_resamples=500, min_vocab_words=0)
    analysis, pq = load_analysis(run_dir)
    other = make_run_dir(tmp_path_factory.mktemp("other"), quality_dense=0.1, quality_bm25=0.1, seed=5)
    html_path, md_path = write_analysis_reports(run_dir, analysis, pq, against=other)
    return run_dir, html_path, md_path


def test_html_is_self_contained_and_complete(reported):
    _, html_path, _ = reported
    page = html_path.read_text()
    assert "class='verdict" in page
    for section in ("Retrieval quality", "per-slice", "Score separation", "Judge calibration",
                    "Training curves", "Against run"):
        assert section in page, section
    assert "not run (no judge_calibration.json" in page  # absent input says so
    assert "training curves" in page and page.count("data:image/png;base64,") >= 3  # slices, separation, training
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network
    for chunk in page.split("data:image/png;base64,")[1:]:
        assert base64.b64decode(chunk.split('"', 1)[0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_section_replaced_not_duplicated(reported):
    run_dir, _, md_path = reported
    analysis, pq = load_analysis(run_dir)
    write_analysis_reports(run_dir, analysis, pq)  # a second time, without --against
    md = md_path.read_text()
    assert md.count(ANALYSIS_BEGIN) == 1 and "## Verdict" in md and "ndcg@10 by slice" in md
    assert md.index(ANALYSIS_BEGIN) < md.index("## Retrieval quality")
    assert "## Against" not in md


def test_chromium_renders_report(reported, tmp_path):
    if not Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} not installed (run tests/tools/ensure_chromium.sh as root)")
    _, html_path, _ = reported
    shot = tmp_path / "report.png"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=False, capture_output=True, timeout=120)
    assert shot.is_file(), "chromium wrote no screenshot"
    from PIL import Image

    img = Image.open(shot).convert("L")
    assert img.size == (1280, 2000)
    hist = img.histogram()
    non_white = sum(hist[:250]) / (img.size[0] * img.size[1])
    assert non_white > 0.02, "the page rendered (almost) blank"


def test_verdict_wording():
    from strata.evaluate.report_html import verdict

    base = {"primary_metric": "ndcg@10", "retrievers": {"baseline": {"ndcg@10": 0.4}, "bm25": {"ndcg@10": 0.3}}}
    v = verdict({**base, "reference": "baseline", "comparisons": {}})
    assert v["level"] == "neutral" and "nothing in this run beats it" in v["text"]
    v = verdict({**base, "reference": None})
    assert "--against" in v["text"]
    cmp = {"mean_a": 0.3, "mean_b": 0.4, "diff": 0.1, "relative_lift": 0.33, "ci_low": 0.05, "ci_high": 0.15,
           "p_value": 0.001, "num_queries": 100, "a_name": "old:bm25", "b_name": "baseline"}
    v = verdict({**base, "reference": "baseline"}, cmp)
    assert v["level"] == "good" and "significantly better" in v["text"]
    v = verdict({**base, "reference": "baseline"}, {**cmp, "diff": -0.1, "ci_low": -0.15, "ci_high": -0.05,
                                                      "p_value": 1.0})
    assert v["level"] == "bad" and "significantly worse" in v["text"]
