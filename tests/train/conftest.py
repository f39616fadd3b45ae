"""A 1-layer MiniLM sentence-transformers model and a small training_examples table (fast on CPU)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from strata.tables import spec

TITLES = {
    "drill": ["DEWALT 20V Cordless Drill Kit", "Ryobi 18V Cordless Drill", "Makita Hammer Drill 18V"],
    "microwave": ["Whirlpool Over the Range Microwave", "GE Countertop Microwave 1.1 cu ft", "Samsung Microwave Oven"],
    "paint": ["Behr Premium Plus Interior Paint White", "Glidden Exterior Paint Gallon", "Rust-Oleum Spray Paint Black"],
    "hose": ["Flexzilla Garden Hose 50 ft", "Gilmour Soaker Hose 25 ft", "Melnor Hose Nozzle"],
    "screws": ["Deck Screws 3 in. 1 lb", "Drywall Screws 1-5/8 in.", "Wood Screws Assortment Kit"],
}
QUERIES = {"drill": ["cordless drill", "drill 18v", "hammer drill"],
           "microwave": ["over range microwave", "countertop microwave", "microwave oven"],
           "paint": ["interior paint", "spray paint black", "exterior paint"],
           "hose": ["garden hose", "soaker hose", "hose nozzle"],
           "screws": ["deck screws", "drywall screws", "wood screws"]}


def product_rows():
    return [dict(product_id=f"{k}{i}", source="shop", title=t, description=None, brand=None, category_id=None,
                 attributes=[]) for k, ts in TITLES.items() for i, t in enumerate(ts)]


def example_rows():
    rows = []
    keys = list(TITLES)
    for k, qs in QUERIES.items():
        other = keys[(keys.index(k) + 1) % len(keys)]
        for j, q in enumerate(qs):
            for i in range(3):
                rows.append(dict(catalog="shop", query=q, query_norm=q, product_id=f"{k}{i}",
                                 grade=2 if i == j else 1, source="human", mined_from=None, rank=None, score=None,
                                 positive_score=None, judge_grade=None, judge_p2=None, judge_id=None,
                                 model_id="m", synthetic=False))
            rows.append(dict(catalog="shop", query=q, query_norm=q, product_id=f"{other}{j}", grade=0,
                             source="taxonomy_sibling", mined_from=None, rank=None, score=0.1, positive_score=0.5,
                             judge_grade=None, judge_p2=None, judge_id=None, model_id="m", synthetic=False))
    return rows


@pytest.fixture(scope="session")
def tiny_st_model(tmp_path_factory):
    from sentence_transformers import SentenceTransformer

    from strata.embed.encoder import resolve_model

    m = SentenceTransformer(resolve_model("baseline"), device="cpu", local_files_only=True)
    enc = m[0].auto_model.encoder
    enc.layer = enc.layer[:1]
    m[0].auto_model.config.num_hidden_layers = 1
    out = tmp_path_factory.mktemp("tiny_st") / "model"
    m.save(str(out))
    return str(out)


@pytest.fixture
def train_lakehouse(tmp_path):
    from deltalake import write_deltalake

    root = tmp_path / "lh"
    write_deltalake(str(root / "products"), pa.Table.from_pylist(product_rows(), schema=spec("products").schema))
    write_deltalake(str(root / "training_examples"),
                    pa.Table.from_pylist(example_rows(), schema=spec("training_examples").schema))
    return root
