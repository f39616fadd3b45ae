"""``strata mine run``'s choice of judge (the mining itself: tests/mine)."""

from pathlib import Path

from strata.commands.mine import judge_choice
from strata.config import load_config


def test_an_explicit_judge_judges_even_where_the_profile_mines_unjudged():
    cfg = load_config("local")  # first pass unjudged: mine.use_judge=false
    mine, judge = judge_choice(cfg, Path("/j"), no_judge=False)
    assert mine.use_judge is True and (judge.backend, judge.model) == ("distilled", "/j")
    assert cfg.mine.use_judge is False  # the loaded config is not changed


def test_no_judge_wins_and_the_configured_judge_is_the_default():
    cfg = load_config("demo", overrides=["judge.model=/cfg"])
    assert judge_choice(cfg, Path("/j"), no_judge=True)[1] is None
    mine, judge = judge_choice(cfg, None, no_judge=False)
    assert judge.model == "/cfg" and mine == cfg.mine
    assert judge_choice(load_config("demo"), None, no_judge=False)[1] is None
