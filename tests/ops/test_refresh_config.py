"""Which mining pass the nightly refresh runs (the refresh itself runs in test_refresh.py)."""

from strata.config import load_config
from strata.ops.refresh import refresh_mine_config


def test_without_remine_the_refresh_mines_as_configured():
    cfg = load_config("demo")
    m, fp = refresh_mine_config(cfg, "/models/3", judged=True)
    assert m.model == "/models/3" and m.n_ann == cfg.mine.n_ann and fp == cfg.mine.model_dump()


def test_with_remine_and_a_judge_the_refresh_mines_the_champions_judged_neighbours():
    cfg = load_config("local", overrides=["judge.model=/j"])  # local: unjudged first pass, judged re-mining
    m, fp = refresh_mine_config(cfg, "/models/3", judged=True)
    assert (m.model, m.use_judge, m.n_ann, m.rank_min, m.n_random) == ("/models/3", True, 20, 0, 0)
    assert fp["remine"] == cfg.pipeline.remine  # a changed remine re-runs the mining step


def test_with_remine_and_no_judge_the_refresh_says_so_and_mines_as_configured(caplog):
    cfg = load_config("local")
    m, _ = refresh_mine_config(cfg, "/models/3", judged=False)
    assert m.use_judge is False and m.n_ann == cfg.mine.n_ann
    assert "judge.model" in caplog.text
