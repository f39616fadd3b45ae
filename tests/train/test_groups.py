"""Spark-built training groups: the same groups the old pandas loader built, hash-keyed augmentation that is
deterministic, per-stage counts read from the written files, and no whole-table read on the driver."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from strata.tables import Lakehouse, spec
from strata.text import product_text
from strata.train.groups import AugmentConfig, build_groups, ray_dataset, read_groups
from tests.train.conftest import example_rows, product_rows


def _pandas_groups(examples: list[dict], products: list[dict]) -> pd.DataFrame:
    """The pre-Spark loader (the earlier ``load_groups``): pandas over the whole table, kept as the oracle."""
    ex = pd.DataFrame(examples)[["catalog", "query", "query_norm", "product_id", "grade", "score", "synthetic"]]
    ex = ex.assign(score=ex["score"].astype(float).fillna(0.0))  # no mining score counts as 0 (easy)
    pr = pd.DataFrame(products)
    pr = pr.assign(text=[product_text(t, d) for t, d in zip(pr["title"], pr["description"])])
    ex = ex.merge(pr[["source", "product_id", "text"]], left_on=["catalog", "product_id"],
                  right_on=["source", "product_id"], how="inner").drop(columns="source")
    ex = ex.sort_values(["catalog", "query_norm", "product_id"])
    return ex.groupby(["catalog", "query_norm"], sort=True).agg(
        query=("query", "first"), texts=("text", list), product_ids=("product_id", list), grades=("grade", list),
        scores=("score", list), synthetic=("synthetic", "any")).reset_index()


def _lakehouse(tmp_path, examples, products=None):
    root = tmp_path / "lh"
    write_deltalake(str(root / "products"), pa.Table.from_pylist(products or product_rows(),
                                                                 schema=spec("products").schema))
    write_deltalake(str(root / "training_examples"),
                    pa.Table.from_pylist(examples, schema=spec("training_examples").schema))
    return Lakehouse(root)


def _messy_examples():
    """The fixture's rows plus the cases the join must handle: a query whose products disagree on the query
    string's case, a row whose product is missing from the catalogue, a second catalogue and a synthetic row."""
    rows = example_rows()
    extra = dict(source="human", mined_from=None, rank=None, score=None, positive_score=None, judge_grade=None,
                 judge_p2=None, judge_id=None, model_id="m")
    rows += [dict(catalog="shop", query="Cordless Drill", query_norm="cordless drill", product_id="hose0", grade=0,
                  synthetic=False, **extra),
             dict(catalog="shop", query="cordless drill", query_norm="cordless drill", product_id="gone", grade=2,
                  synthetic=False, **extra),
             dict(catalog="other", query="paint", query_norm="paint", product_id="p1", grade=2, synthetic=True,
                  **extra)]
    products = product_rows() + [dict(product_id="p1", source="other", title="Paint", description="White, 1 gal",
                                      brand=None, category_id=None, attributes=[])]
    return rows, products


def test_groups_equal_the_pandas_loader(spark, tmp_path, forbid_whole_reads):
    rows, products = _messy_examples()
    lh = _lakehouse(tmp_path, rows, products)
    seen = forbid_whole_reads("training_examples", "products")
    g = build_groups(spark, lh, tmp_path / "groups")
    assert seen == []  # Spark read the tables; nothing went through the driver
    got = read_groups(g).sort_values(["catalog", "query_norm"]).reset_index(drop=True)
    want = _pandas_groups(rows, products)
    assert len(got) == len(want) == g.groups == g.real
    for col in ("catalog", "query_norm", "query", "synthetic"):
        assert got[col].tolist() == want[col].tolist(), col
    assert [list(x) for x in got["texts"]] == want["texts"].tolist()
    assert [list(x) for x in got["grades"]] == want["grades"].tolist()
    assert [list(x) for x in got["scores"]] == want["scores"].tolist()
    assert {0.1, 0.0} <= {x for xs in got["scores"] for x in xs}  # mined rows keep theirs; human ones are 0
    # pids: one id per (catalog, product_id) across the whole table, and different products differ
    pairs = {(c, p, int(h)) for c, ps, hs in zip(want["catalog"], want["product_ids"], got["pids"])
             for p, h in zip(ps, hs)}
    assert len({(c, p) for c, p, _ in pairs}) == len(pairs) == len({h for _, _, h in pairs})
    assert got["kind"].eq("real").all()
    assert g.stage1 == int((got["best"] >= 1).sum()) and g.stage2 == int((got["n_grades"] >= 2).sum())
    assert "gone" not in {p for ps in want["product_ids"] for p in ps}


def test_spelling_copies_are_hash_drawn_and_deterministic(spark, tmp_path):
    lh = _lakehouse(tmp_path, example_rows())
    cfg = AugmentConfig(spelling_rate=0.5, seed=7)
    a = build_groups(spark, lh, tmp_path / "a", cfg=cfg)
    b = build_groups(spark, lh, tmp_path / "b", cfg=cfg)
    ga, gb = read_groups(a), read_groups(b)
    assert ga["query"].tolist() == gb["query"].tolist()  # same inputs, same groups, same order
    copies = ga[ga["kind"] == "misspelled"]
    assert a.misspelled_copies == len(copies) and 3 <= len(copies) <= 12  # ~half of 15 queries
    assert copies["synthetic"].all() and (copies["query_norm"] == copies["query"].str.lower()).all()
    real = ga[ga["kind"] == "real"].set_index("query_norm")
    for _, c in copies.iterrows():
        src = [q for q in real.index if list(real.loc[q, "texts"]) == list(c["texts"])]
        assert src and c["query"] not in src  # a typo'd copy of a real group, with that group's products
    other = build_groups(spark, lh, tmp_path / "c", cfg=AugmentConfig(spelling_rate=0.5, seed=8))
    assert set(read_groups(other)["query"]) != set(ga["query"])
    # read shuffled, not in query order (15 real groups: sorted by chance with p = 1/15!)
    assert real.index.tolist() != sorted(real.index)


def test_synthetic_queries_come_from_used_products(spark, tmp_path):
    rows = [r for r in example_rows() if not r["product_id"].startswith("screws")]
    lh = _lakehouse(tmp_path, rows)
    g = build_groups(spark, lh, tmp_path / "g", cfg=AugmentConfig(synthetic_queries=4))
    syn = read_groups(g).query("kind == 'synthetic_query'")
    assert g.synthetic_queries == len(syn) == 4 and syn["synthetic"].all()
    assert all(list(gr) == [2] for gr in syn["grades"]) and (syn["best"] == 2).all()
    screws = {t for t in (r["title"] for r in product_rows()) if "Screws" in t}
    assert not screws & {t for ts in syn["texts"] for t in ts}  # unused products get no synthetic query
    real = read_groups(g).query("kind == 'real'")
    assert g.stage1 == int((real["best"] >= 1).sum()) + 4  # the screws queries kept only irrelevant rows
    assert g.stage2 == int((real["n_grades"] >= 2).sum())  # one grade each: Stage 2 skips them


def test_manifest_reuses_unchanged_input_and_rebuilds_a_new_version(spark, tmp_path):
    rows = example_rows()
    lh = _lakehouse(tmp_path, rows)
    a = build_groups(spark, lh, tmp_path / "g")
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "g").glob("*.parquet")}
    assert build_groups(spark, lh, tmp_path / "g") == a
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "g").glob("*.parquet")} == stamp
    write_deltalake(str(lh.path("training_examples")),
                    pa.Table.from_pylist(rows[:8], schema=spec("training_examples").schema),
                    mode="overwrite")
    b = build_groups(spark, lh, tmp_path / "g")
    assert b.source_version == a.source_version + 1 and b.groups == 2
    # a new products version (product text may have changed) rebuilds too
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "g").glob("*.parquet")}
    write_deltalake(str(lh.path("products")), pa.Table.from_pylist(product_rows(), schema=spec("products").schema),
                    mode="overwrite")
    assert build_groups(spark, lh, tmp_path / "g") == b
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "g").glob("*.parquet")} != stamp


def test_no_rows_is_a_clear_error(spark, tmp_path):
    lh = _lakehouse(tmp_path, example_rows())
    with pytest.raises(ValueError, match="no rows for \\['nowhere'\\]"):
        build_groups(spark, lh, tmp_path / "g", catalogs=["nowhere"])


def test_ray_dataset_streams_each_stages_groups(engines, tmp_path):
    lh = _lakehouse(tmp_path, example_rows())
    g = build_groups(engines.spark, lh, tmp_path / "g", cfg=AugmentConfig(synthetic_queries=2))
    for stage in (1, 2):
        ds = ray_dataset(engines.ray(), g, stage)
        assert ds.count() == g.count(stage) == len(read_groups(g, stage))
    assert set(ds.columns()) >= {"query", "texts", "pids", "grades"}
    # each block comes out in hash order (the shuffle), whatever order the files hold
    for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        order = block.column("order").to_pylist()
        assert order == sorted(order)


def test_teachers_are_the_mining_judges_expected_grade_else_the_grade(spark, tmp_path):
    """Stage 2's distillation targets: p1 + 2 p2 of the judge named in the row's judge_id, in its catalog (a
    scored verdict only), the grade everywhere else (human rows, another judge's or catalog's verdict, an errored
    one, no judgments)."""
    from datetime import datetime

    rows = example_rows()
    judged = [r for r in rows if r["source"] == "taxonomy_sibling"][:3]
    for r in judged:
        r["judge_id"] = "j1"
    lh = _lakehouse(tmp_path, rows)
    plain = read_groups(build_groups(spark, lh, tmp_path / "plain"))  # no judgments table yet
    assert all(list(t) == [float(g) for g in gs] for t, gs in zip(plain["teachers"], plain["grades"]))

    def verdict(r, judge_id, p1, p2, status="ok"):
        return dict(source="shop", query_norm=r["query_norm"], query=r["query"], product_id=r["product_id"],
                    judge_id=judge_id, judge_version="v", grade=0, p0=1 - p1 - p2, p1=p1, p2=p2, status=status,
                    error=None, run_id="r", judged_at=datetime(2026, 1, 1))

    human = next(r for r in rows if r["source"] == "human")
    verdicts = [verdict(judged[0], "j1", 0.5, 0.25), verdict(judged[1], "j1", 0.2, 0.7, status="error:oom"),
                verdict(judged[2], "j2", 0.3, 0.3), {**verdict(judged[2], "j1", 0.9, 0.1), "source": "other"},
                verdict(human, "j1", 0.0, 0.0)]
    write_deltalake(str(lh.path("judgments")), pa.Table.from_pylist(verdicts, schema=spec("judgments").schema))
    got = read_groups(build_groups(spark, lh, tmp_path / "plain"))  # a new judgments version: rebuilt
    texts = {p["product_id"]: product_text(p["title"], p["description"]) for p in product_rows()}
    teacher = {(q, t): v for q, ts, vs in zip(got["query_norm"], got["texts"], got["teachers"])
               for t, v in zip(ts, vs)}
    assert teacher[(judged[0]["query_norm"], texts[judged[0]["product_id"]])] == pytest.approx(1.0)
    assert teacher[(judged[1]["query_norm"], texts[judged[1]["product_id"]])] == 0.0  # errored: its grade
    assert teacher[(judged[2]["query_norm"], texts[judged[2]["product_id"]])] == 0.0  # not its judge or catalog
    assert teacher[(human["query_norm"], texts[human["product_id"]])] == float(human["grade"])
    changed = sum(a != b for x, y in zip(plain["teachers"], got["teachers"]) for a, b in zip(x, y))
    assert changed == 1
    assert sum(x for xs in got["judged"] for x in xs) == 1 and not any(x for xs in plain["judged"] for x in xs)


def test_teachers_match_judgments_by_catalog_when_the_label_source_differs(spark, tmp_path):
    """The judge writes a pair's labels source (``bestbuy-small``) into ``judgments.source`` while the example
    and its product live in the catalog ``bestbuy``: the verdict still reaches the row (``catalog_of``), and a
    verdict from a source of another catalog does not."""
    from datetime import datetime

    rows = [{**r, "catalog": "bestbuy"} for r in example_rows()]
    products = [{**p, "source": "bestbuy"} for p in product_rows()]
    judged = [r for r in rows if r["source"] == "taxonomy_sibling"][:2]
    for r in judged:
        r["judge_id"] = "j1"
    lh = _lakehouse(tmp_path, rows, products)

    def verdict(r, source, p1, p2):
        return dict(source=source, query_norm=r["query_norm"], query=r["query"], product_id=r["product_id"],
                    judge_id="j1", judge_version="v", grade=2, p0=1 - p1 - p2, p1=p1, p2=p2, status="ok",
                    error=None, run_id="r", judged_at=datetime(2026, 1, 1))

    write_deltalake(str(lh.path("judgments")), pa.Table.from_pylist(
        [verdict(judged[0], "bestbuy-small", 0.25, 0.5), verdict(judged[1], "homedepot", 0.0, 1.0)],
        schema=spec("judgments").schema))
    got = read_groups(build_groups(spark, lh, tmp_path / "g"))
    texts = {p["product_id"]: product_text(p["title"], p["description"]) for p in products}
    teacher = {(q, t): (v, j) for q, ts, vs, js in zip(got["query_norm"], got["texts"], got["teachers"],
                                                        got["judged"]) for t, v, j in zip(ts, vs, js)}
    assert teacher[(judged[0]["query_norm"], texts[judged[0]["product_id"]])] == (pytest.approx(1.25), True)
    assert teacher[(judged[1]["query_norm"], texts[judged[1]["product_id"]])] == (0.0, False)  # another catalog
    assert sum(x for xs in got["judged"] for x in xs) == 1
