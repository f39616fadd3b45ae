"""The judge commands' library functions: the eval sample, and inputs that name nothing to work on."""

import pandas as pd
import pytest

from strata.judge.runner import JudgeDataError, eval_sample, resolve_candidates


def test_eval_sample_keeps_whole_queries_in_a_stable_order():
    ev = pd.DataFrame({"query_norm": [f"q{i // 3}" for i in range(60)], "grade": 0})  # 20 queries x 3 pairs
    assert eval_sample(ev, None) is ev and eval_sample(ev, 60) is ev
    got = eval_sample(ev, 10)
    assert len(got) == 12  # whole queries until the limit is reached: 4 x 3
    assert got["query_norm"].value_counts().eq(3).all()
    pd.testing.assert_frame_equal(eval_sample(ev.iloc[::-1], 10).sort_index(), got)  # order of rows does not matter


def test_candidates_naming_nothing_fail_before_any_engine(tmp_path):
    from strata.tables import Lakehouse

    with pytest.raises(JudgeDataError, match="no such folder or table"):
        resolve_candidates(Lakehouse(tmp_path), str(tmp_path / "nope"))
    assert resolve_candidates(Lakehouse(tmp_path), str(tmp_path)) == tmp_path
