import numpy as np
import pandas as pd

from strata.mine.config import MineConfig
from strata.mine.guard import apply_judgments, margin_rule


def _cands():
    return pd.DataFrame({"query_norm": ["q"] * 4, "product_id": ["a", "b", "c", "d"],
                         "route": ["ann", "ann", "random", "cousin"],
                         "score": [0.80, 0.74, 0.30, np.nan], "positive_score": [0.78, 0.78, 0.78, 0.78]})


def test_margin_rule_counts_each_rule_and_keeps_unscored_rows():
    kept, removed = margin_rule(_cands(), MineConfig(absolute_margin=0.05, relative_margin=0.02))
    # a: 0.80 > 0.78 - 0.05 -> absolute; b: 0.74 > 0.73 -> absolute too; c kept; d has no score -> kept
    assert list(kept["product_id"]) == ["c", "d"]
    assert removed == {"absolute_margin": 2, "relative_margin": 0}
    kept, removed = margin_rule(_cands(), MineConfig(absolute_margin=None, relative_margin=0.06))
    # threshold 0.78 * 0.94 = 0.7332: a and b go
    assert list(kept["product_id"]) == ["c", "d"] and removed == {"relative_margin": 2}
    kept, removed = margin_rule(_cands(), MineConfig(absolute_margin=None, relative_margin=None))
    assert len(kept) == 4 and removed == {}


def test_judge_positive_candidates_become_graded_positives():
    judged = pd.DataFrame({"query_norm": ["q", "q", "q"], "product_id": ["a", "b", "c"], "grade": [2, 0, None],
                           "p2": [0.9, 0.1, None], "judge_id": ["j@1"] * 3, "status": ["ok", "ok", "error:backend"]})
    out, stats = apply_judgments(_cands(), judged)
    rows = out.set_index("product_id")
    assert rows.loc["a", "source"] == "judge" and rows.loc["a", "grade"] == 2 and rows.loc["a", "mined_from"] == "ann"
    assert rows.loc["b", "source"] == "ann" and rows.loc["b", "grade"] == 0 and rows.loc["b", "judge_grade"] == 0
    # c failed, d was never judged: neither is trusted as a negative
    assert set(rows.index) == {"a", "b"}
    assert stats["judged"] == 2 and stats["unjudged_dropped"] == 2 and stats["judge_positive_by_route"] == {"ann": 1}
