"""A judge failure (error:backend) is recorded with its status but is not a verdict: the resume retries it, an
ok verdict (or an input error) is never judged again, a run that fails on too many pairs fails, and mining
says why it dropped candidates unjudged."""

import numpy as np
import pandas as pd
import pytest

import strata.judge.job as job
from strata.judge.backends import judge_identity
from strata.judge.config import JudgeConfig
from strata.judge.job import JudgeFailures, missing_pairs, read_candidates, run_judging
from strata.judge.protocol import BACKEND_ERROR, EMPTY_QUERY, OK, judge_scored
from strata.tables import Lakehouse

CFG = JudgeConfig(backend="openai", model="flaky", base_url="http://127.0.0.1:9/v1", batch_size=4, chunk_rows=4)


class FlakyJudge:
    """Scores (0.1, 0.2, 0.7); while ``broken``, its backend raises on any batch holding a "FAIL" product."""

    def __init__(self, cfg: JudgeConfig, broken: bool = True):
        self.judge_id, self.version = judge_identity(cfg)
        self.broken = broken

    def _score(self, rows):
        if self.broken and any("FAIL" in r.product_text for r in rows):
            raise TimeoutError("endpoint timed out")
        return np.tile([0.1, 0.2, 0.7], (len(rows), 1))

    def judge(self, batch):
        return judge_scored(self, batch, self._score)


def _candidates(n: int, fail: set[int], empty_query: int | None = None) -> pd.DataFrame:
    rows = [{"source": "toy", "query": "" if i == empty_query else "cordless drill", "product_id": f"p{i}",
             "title": f"{'FAIL ' if i in fail else ''}drill {i}"} for i in range(n)]
    return read_candidates(pd.DataFrame(rows))


def _use(monkeypatch, judge: FlakyJudge) -> None:
    monkeypatch.setattr(job, "load_judge", lambda cfg, threads=None: judge)


def test_failed_pairs_are_retried_and_ok_verdicts_are_never_rejudged(engines, tmp_path, monkeypatch):
    lh = Lakehouse(tmp_path / "lh")
    cands = _candidates(10, fail={3}, empty_query=9)
    cfg = CFG.model_copy(update={"max_error_share": 0.1})
    _use(monkeypatch, FlakyJudge(cfg))
    first = run_judging(engines, lh, cands, cfg, "run-1", use_ray=False)
    # 10 judged: 1 failed (1/10 = 0.1, not above 0.1), 1 empty query (an input error, not a failure)
    assert (first["judged"], first["errors"], first["failed"], first["input_errors"]) == (10, 2, 1, 1)
    assert first["error_share"] == 0.1
    j = lh.read_arrow("judgments").to_pandas().set_index("product_id")
    assert j.loc["p3", "status"] == BACKEND_ERROR and "TimeoutError: endpoint timed out" in j.loc["p3", "error"]
    assert j.loc["p9", "status"] == EMPTY_QUERY and (j.drop(index=["p3", "p9"])["status"] == OK).all()
    assert list(missing_pairs(lh, cands, first["judge_id"])["product_id"]) == ["p3"]

    _use(monkeypatch, FlakyJudge(cfg, broken=False))
    second = run_judging(engines, lh, cands, cfg, "run-2", use_ray=False)
    assert (second["already_judged"], second["judged"], second["errors"]) == (9, 1, 0)
    j = lh.read_arrow("judgments").to_pandas().set_index("product_id")
    assert len(j) == 10 and j.loc["p3", "status"] == OK and j.loc["p3", "grade"] == 2
    assert list(j.loc[j["run_id"] == "run-2"].index) == ["p3"]  # the ok and input-error rows were not redone
    assert run_judging(engines, lh, cands, cfg, "run-3", use_ray=False)["judged"] == 0


def test_a_run_over_the_error_share_fails_after_writing(engines, tmp_path, monkeypatch):
    lh = Lakehouse(tmp_path / "lh")
    cands = _candidates(10, fail={2, 5}, empty_query=9)
    cfg = CFG.model_copy(update={"max_error_share": 0.1})
    _use(monkeypatch, FlakyJudge(cfg))
    with pytest.raises(JudgeFailures) as e:
        run_judging(engines, lh, cands, cfg, "run-1", use_ray=False)  # 2/10 = 0.2 > 0.1
    s = e.value.summary
    assert (s["judged"], s["failed"], s["input_errors"], s["error_share"]) == (10, 2, 1, 0.2)
    assert "failed on 2 of 10 pairs" in str(e.value) and "1 more had unusable input" in str(e.value)
    j = lh.read_arrow("judgments").to_pandas()
    assert len(j) == 10 and (j["status"] == BACKEND_ERROR).sum() == 2  # written, with their status
    # the default share (0.01) is what a run gets without a setting
    assert JudgeConfig().max_error_share == 0.01
    with pytest.raises(ValueError):
        JudgeConfig(max_error_share=1.5)


def test_spark_staging_retries_failed_pairs_like_missing_pairs(spark, tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    from strata.judge.job import stage_candidates
    from strata.tables import spec

    lh = Lakehouse(tmp_path / "lh")
    cands = _candidates(6, fail=set())
    path = tmp_path / "cands"
    write_deltalake(str(path), pa.Table.from_pandas(cands[["source", "query", "product_id", "product_text"]],
                                                    preserve_index=False))
    # p0 ok, p1 failed, p2 input error, p3 a row without a status (counts as judged), p4 failed by another
    # judge, p5 never judged
    rows = [("p0", "j@1", OK), ("p1", "j@1", BACKEND_ERROR), ("p2", "j@1", EMPTY_QUERY), ("p3", "j@1", None),
            ("p4", "j@1", OK), ("p4", "j@2", BACKEND_ERROR)]
    write_deltalake(str(lh.path("judgments")), pa.Table.from_pylist(
        [dict(source="toy", query_norm="cordless drill", query="cordless drill", product_id=p, judge_id=jid,
              judge_version="1", grade=None, p0=None, p1=None, p2=None, status=st, error=None, run_id="r",
              judged_at=pd.Timestamp("2026-01-01")) for p, jid, st in rows], schema=spec("judgments").schema))
    assert sorted(missing_pairs(lh, cands, "j@1")["product_id"]) == ["p1", "p5"]
    todo = stage_candidates(spark, lh, path, "j@1", tmp_path / "staging")
    assert (todo.total, todo.n) == (6, 2)
    assert sorted(pd.concat(list(todo.frames(8)))["product_id"]) == ["p1", "p5"]
    assert sorted(missing_pairs(lh, cands, "j@2")["product_id"]) == ["p0", "p1", "p2", "p3", "p4", "p5"]


def test_mining_counts_why_candidates_were_dropped_unjudged():
    from strata.mine.job import _unjudged_reasons

    cands = pd.DataFrame({"query_norm": ["q"] * 6, "product_id": [f"p{i}" for i in range(6)]})
    judged = pd.DataFrame({"query_norm": ["q"] * 5, "product_id": ["p0", "p1", "p2", "p3", "p4"],
                           "grade": [2, 0, None, None, None], "p2": [0.9, 0.1, None, None, None],
                           "judge_id": "j", "status": [OK, "truncated", BACKEND_ERROR, EMPTY_QUERY, None]})
    # p0, p1 scored (kept by the guard); p2 failed (retried by the next judging run); p3 empty query and p4 a
    # row without a status: unusable; p5 no row at all
    assert _unjudged_reasons(cands, judged) == {"no_verdict": 1, "judge_failed": 1, "unusable": 2}
    assert _unjudged_reasons(cands, judged.iloc[:0]) == {"no_verdict": 6, "judge_failed": 0, "unusable": 0}
