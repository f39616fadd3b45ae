"""Google product taxonomy: ``id - A > B > C`` lines."""

from __future__ import annotations

import pytest

from strata.sources.google_taxonomy import load_google_taxonomy

TEXT = """# Google_Product_Taxonomy_Version: 2021-09-21
1 - Animals & Pet Supplies
3237 - Animals & Pet Supplies > Live Animals
2 - Animals & Pet Supplies > Pet Supplies
3 - Animals & Pet Supplies > Pet Supplies > Bird Supplies

# another comment
not a category line
77 - Nowhere > Child
78 - Animals & Pet Supplies >  > Empty
3 - Animals & Pet Supplies > Live Animals > Birds
"""


def test_fixture(tmp_path):
    path = tmp_path / "taxonomy-with-ids.en-US.txt"
    path.write_text(TEXT)
    data = load_google_taxonomy(path)
    rows = data.tables["taxonomy"].to_dict("records")
    assert [(r["category_id"], r["parent_id"], r["name"], r["path"], r["depth"]) for r in rows] == [
        ("1", None, "Animals & Pet Supplies", ["Animals & Pet Supplies"], 1),
        ("3237", "1", "Live Animals", ["Animals & Pet Supplies", "Live Animals"], 2),
        ("2", "1", "Pet Supplies", ["Animals & Pet Supplies", "Pet Supplies"], 2),
        ("3", "2", "Bird Supplies", ["Animals & Pet Supplies", "Pet Supplies", "Bird Supplies"], 3),
    ]
    assert set(data.tables["taxonomy"]["source"]) == {"google"} and data.source == "google-taxonomy"
    reasons = dict(zip(data.quarantine["location"], data.quarantine["reason"]))
    name = "taxonomy-with-ids.en-US.txt"
    assert reasons == {
        f"{name}:8": "not of the form 'id - A > B > C'",
        f"{name}:9": "parent category 'Nowhere' is not defined",
        f"{name}:10": "empty category name in path",
        f"{name}:11": "duplicate key {'source': 'google', 'category_id': '3'} conflicts with "
        f"{name}:5 on parent_id, name, path; first kept",
    }
    assert data.read == {"taxonomy": 8}  # comments and blank lines are not records


def test_folder_and_limit(tmp_path):
    (tmp_path / "taxonomy-with-ids.en-US.txt").write_text(TEXT)
    data = load_google_taxonomy(tmp_path, limit=2)
    assert data.tables["taxonomy"]["category_id"].tolist() == ["1", "3237"]


def test_real_file(data_root):
    path = data_root / "google-taxonomy" / "taxonomy-with-ids.en-US.txt"
    if not path.is_file():
        pytest.skip("../shared/data/google-taxonomy not found")
    data = load_google_taxonomy(path)
    assert data.read == {"taxonomy": 5595} and data.quarantine.empty
    tax = data.tables["taxonomy"].set_index("category_id")
    assert tax.loc["499972", "path"] == ["Apparel & Accessories", "Clothing Accessories", "Sashes"]
    assert tax.loc["499972", "parent_id"] == "167"
    assert tax["depth"].max() == 7 and tax.index.is_unique
    assert set(tax.loc[tax["depth"] > 1, "parent_id"]) <= set(tax.index)
