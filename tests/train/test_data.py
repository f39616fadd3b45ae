"""Per-batch row sampling: which rows of a query group each Stage 1 mode sends to the loss."""

import random

import pytest

from strata.train.data import sample_batch

GROUP = {"query": ["drill"], "texts": [["e1", "e2", "p1", "p2", "z1", "z2", "z3"]], "pids": [[1, 2, 3, 4, 5, 6, 7]],
         "grades": [[2, 2, 1, 1, 0, 0, 0]]}


def _grades(partials: str, seed: int, negatives: int = 3, group: dict = GROUP) -> list[int]:
    return sample_batch(group, 1, random.Random(seed), negatives=negatives, partials=partials)[3]


@pytest.mark.parametrize("seed", range(20))
def test_graded_mode_sends_one_exact_one_partial_then_irrelevant(seed):
    assert _grades("graded", seed) == [2, 1, 0, 0]


@pytest.mark.parametrize("seed", range(20))
def test_ignore_mode_prefers_irrelevant_rows(seed):
    assert _grades("ignore", seed) == [2, 0, 0, 0]


def test_negative_mode_draws_from_every_lower_grade():
    seen = {tuple(sorted(_grades("negative", s)[1:])) for s in range(50)}
    assert any(1 in s for s in seen) and any(0 in s for s in seen)
    assert all(_grades("negative", s)[0] == 2 for s in range(50))


def test_modes_fill_up_when_a_query_lacks_irrelevant_rows():
    g = {"query": ["q"], "texts": [["e", "p1", "p2", "p3"]], "pids": [[1, 2, 3, 4]], "grades": [[2, 1, 1, 1]]}
    for mode in ("graded", "ignore", "negative"):
        got = _grades(mode, 0, group=g)
        assert got[0] == 2 and sorted(got[1:]) == [1, 1, 1], mode
    # a partial-only query: its partials are its positives' pool, nothing is invented
    g = {"query": ["q"], "texts": [["p", "z"]], "pids": [[1, 2]], "grades": [[1, 0]]}
    assert _grades("graded", 0, group=g) == [1, 0]


@pytest.mark.parametrize("seed", range(20))
def test_positives_takes_several_top_grade_rows_without_repeats(seed):
    q, texts, owner, grades, pids = sample_batch(GROUP, 1, random.Random(seed), negatives=2, partials="graded",
                                                 positives=2)
    # both exact rows (distinct), then one partial and one irrelevant: 2 + negatives rows
    assert grades == [2, 2, 1, 0] and sorted(texts[:2]) == ["e1", "e2"] and len(set(pids)) == 4


def test_positives_caps_at_what_the_query_has_and_keeps_the_default_draw():
    # asking for 3 exact rows when there are 2 takes both, and the negatives still follow
    assert _grades("graded", 0, negatives=3) == [2, 1, 0, 0]
    got = sample_batch(GROUP, 1, random.Random(0), negatives=3, partials="negative", positives=3)[3]
    assert got[:2] == [2, 2] and len(got) == 5 and all(g < 2 for g in got[2:])
    # positives=1 is the default's exact draw (earlier runs' batches are reproduced)
    for s in range(10):
        assert (sample_batch(GROUP, 1, random.Random(s), negatives=3, partials="graded", positives=1)
                == sample_batch(GROUP, 1, random.Random(s), negatives=3, partials="graded"))


def test_positives_below_one_is_a_clear_error():
    with pytest.raises(ValueError, match="positives must be >= 1"):
        sample_batch(GROUP, 1, random.Random(0), positives=0)


# Hard-negative draws: 6 irrelevant rows, two hard (mining cosine 0.6) and four easy (0.1).
HARD = {"query": ["drill"], "texts": [["e", "h1", "h2", "r1", "r2", "r3", "r4"]], "pids": [[1, 2, 3, 4, 5, 6, 7]],
        "grades": [[2, 0, 0, 0, 0, 0, 0]], "scores": [[0.7, 0.6, 0.6, 0.1, 0.1, 0.1, 0.1]]}


def _texts(seed: int, temperature: float | None, negatives: int = 2) -> list[str]:
    return sample_batch(HARD, 1, random.Random(seed), negatives=negatives, partials="graded",
                        hard_temperature=temperature)[1]


def test_hard_temperature_prefers_high_scoring_negatives():
    def hard_share(t: float | None) -> float:
        got = [x for s in range(400) for x in _texts(s, t)[1:]]
        return sum(x.startswith("h") for x in got) / len(got)

    # uniform: 2 hard of 6 -> 1/3 of the draws; T = 0.1: weight ratio e^5 ~ 148 -> nearly all hard;
    # T = 1: ratio e^0.5 -> a mild preference (still sees easy rows)
    assert 0.27 < hard_share(None) < 0.40
    assert hard_share(0.1) > 0.95
    assert 0.38 < hard_share(1.0) < 0.60


def test_hard_draw_is_without_replacement_and_seeded():
    for s in range(50):
        got = _texts(s, 0.2, negatives=6)
        assert sorted(got) == sorted(HARD["texts"][0]) and got[0] == "e"
    assert _texts(3, 0.2) == _texts(3, 0.2)


def test_uniform_draw_ignores_scores():
    # Without a temperature the scores column is not read: the draw equals that of a group without it.
    plain = {k: v for k, v in HARD.items() if k != "scores"}
    for s in range(20):
        assert _texts(s, None) == sample_batch(plain, 1, random.Random(s), negatives=2, partials="graded")[1]


def test_hard_temperature_without_scores_is_a_clear_error():
    plain = {k: v for k, v in HARD.items() if k != "scores"}
    with pytest.raises(ValueError, match="scores column"):
        sample_batch(plain, 1, random.Random(0), negatives=2, partials="graded", hard_temperature=0.1)


def test_hard_draw_survives_extreme_scores_and_temperatures():
    g = {**HARD, "scores": [[0.7, 50.0, -50.0, 0.1, 0.1, 0.1, 0.1]]}
    got = sample_batch(g, 1, random.Random(0), negatives=1, partials="graded", hard_temperature=1e-4)[1]
    assert got == ["e", "h1"]  # score 50 at T = 1e-4: always drawn, and nothing overflows


def test_teachers_ride_along_without_changing_the_draw():
    g = {**GROUP, "teachers": [[2.0, 1.8, 1.1, 0.9, 0.4, 0.0, 0.2]],
         "judged": [[False, True, False, True, True, False, False]]}
    for stage in (1, 2):
        for s in range(10):
            plain = sample_batch(g, stage, random.Random(s), negatives=3)
            *same, teacher, judged = sample_batch(g, stage, random.Random(s), negatives=3, with_teacher=True)
            assert tuple(same) == plain
            assert teacher == [g["teachers"][0][p - 1] for p in plain[4]]  # pids 1..7 index the rows
            assert judged == [g["judged"][0][p - 1] for p in plain[4]]
    with pytest.raises(ValueError, match="teachers and judged columns"):
        sample_batch(GROUP, 2, random.Random(0), with_teacher=True)


JUDGED = {"query": ["drill"], "texts": [[f"t{i}" for i in range(12)]], "pids": [list(range(12))],
          "grades": [[2, 1, 0, 0, 2, 2, 1, 1, 0, 0, 0, 0]], "teachers": [[1.5] * 12],
          "judged": [[False] * 4 + [True] * 8]}  # 4 human-labelled rows, 8 the judge scored


@pytest.mark.parametrize("seed", range(10))
def test_judged_rows_split_the_slots_between_judge_and_human_rows(seed):
    def flags(k, rows=8, g=JUDGED):
        out = sample_batch(g, 2, random.Random(seed), rows_per_query=rows, with_teacher=True, judged_rows=k)
        assert len(set(out[4])) == len(out[4])  # without replacement
        return out[6]

    assert sum(flags(4)) == 4 and len(flags(4)) == 8  # 4 human + 4 judged
    assert sum(flags(2)) == 4  # only 4 human rows: the free slots go to judge rows
    assert sum(flags(0)) == 4 and sum(flags(8)) == 8
    few = {**JUDGED, "judged": [[False] * 10 + [True] * 2]}
    assert sum(flags(4, g=few)) == 2 and len(flags(4, g=few)) == 8  # 2 judged rows: humans fill the rest
    assert len(flags(4, rows=20)) == 12  # a query with fewer rows than slots sends them all


def test_judged_rows_is_stage2_only_and_validated():
    plain = sample_batch(JUDGED, 1, random.Random(3), with_teacher=True)
    assert sample_batch(JUDGED, 1, random.Random(3), with_teacher=True, judged_rows=4) == plain
    with pytest.raises(ValueError, match="judged_rows needs with_teacher"):
        sample_batch(JUDGED, 2, random.Random(0), judged_rows=4)
    with pytest.raises(ValueError, match="judged_rows needs with_teacher"):
        sample_batch(JUDGED, 2, random.Random(0), rows_per_query=8, with_teacher=True, judged_rows=9)
    from strata.train.config import Stage2Config

    assert Stage2Config(judged_rows=4).uses_teachers and not Stage2Config().uses_teachers
    with pytest.raises(ValueError, match="judged_rows"):
        Stage2Config(judged_rows=9, rows_per_query=8)
