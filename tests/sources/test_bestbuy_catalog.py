"""Best Buy catalog: category CSV (BOM) and the TSV-in-zip product dumps."""

from __future__ import annotations

import zipfile

import pytest

from strata.sources.base import SourceSchemaError
from strata.sources.bestbuy_catalog import load_bestbuy_catalog

LEVELS = ",".join(f"categoryIdLevel{i},categoryNameLevel{i}" for i in range(1, 8))
CAT_HEADER = f"categoryID,categoryName,{LEVELS}\n"


def cat_row(cid, name, *ancestors):
    cells = [cid, name] + [x for a in ancestors for x in a]
    return ",".join(cells + [""] * (16 - len(cells))) + "\n"


ROOT = ("cat00000", "Best Buy")
VG = ("abcat0700000", "Video Games")
CATEGORIES = [
    cat_row(*ROOT),
    cat_row(*VG, ROOT),
    cat_row("abcat0701000", "Xbox 360", VG, ROOT),
    cat_row("abcat0701002", "Xbox 360 Games", ("abcat0701000", "Xbox 360"), VG, ROOT),
    cat_row("bad0001", "Gap", ("", ""), ROOT),  # level 1 empty, level 2 set
    cat_row("bad0002", "Orphan", ("x1", "Somewhere")),  # ancestors do not reach the root
]
TSV_HEADER = "sku\tname\ttype\tmanufacturer\tcategoryPathId\tshortDescription\tlongDescription\tcolor\n"


def tsv(*rows):
    return TSV_HEADER + "".join("\t".join(r) + "\r\n" for r in rows)


def make_folder(tmp_path, files):
    folder = tmp_path / "bestbuy-catalog"
    folder.mkdir()
    (folder / "categories_BestBuy.csv").write_bytes(("\ufeff" + CAT_HEADER + "".join(CATEGORIES)).encode())
    for stem, text, encoding in files:
        with zipfile.ZipFile(folder / f"ext_{stem}_BestBuy.zip", "w") as z:
            z.writestr(f"{stem}_BestBuy.tsv", text.encode(encoding))
            z.writestr(f"{stem}_BestBuy.csv", b"a decoy the adapter must ignore\n")
    return folder


FILE1 = tsv(
    ("1004622", "Sniper - Xbox 360", "Game", "City Interactive", "abcat0701002", "Short", "", "Black"),
    # an HTML description, CSV-quoted because it holds a tab, newlines and "" quotes
    ("9498377", "Yamaha - Commander", "HardGood", "Yamaha", "pcmcat186600050004", "",
     '"<style>\t.c {x}</style>\n<table width=""316"">\n<td>Use this — commander</td></table>"', ""),
    ("1111", "Too few fields"),
    ("",) * 8,  # the blank rows some dumps end with
)
FILE2 = tsv(
    ("1004622", "Sniper - Xbox 360", "Game", "City Interactive", "abcat0701002", "Short", "", "Black"),  # same
    ("9498377", "Yamaha - Commander (renamed)", "HardGood", "Yamaha", "pcmcat186600050004", "", "", ""),
    ("2222", "Café Olé", "Music", "", "cat02669", "", "", ""),
)


def test_categories_and_products(tmp_path):
    folder = make_folder(tmp_path, [("product1", FILE1, "cp1252"), ("product2", FILE2, "utf-8")])
    data = load_bestbuy_catalog(folder)
    tax = data.tables["taxonomy"].set_index("category_id")
    assert tax.loc["cat00000"].to_dict() == {
        "source": "bestbuy", "parent_id": None, "name": "Best Buy", "path": ["Best Buy"], "depth": 1}
    assert tax.loc["abcat0701002", "path"] == ["Best Buy", "Video Games", "Xbox 360", "Xbox 360 Games"]
    assert tax.loc["abcat0701002", "parent_id"] == "abcat0701000" and tax.loc["abcat0701002", "depth"] == 4
    products = data.tables["products"]
    assert products["product_id"].tolist() == ["1004622", "9498377", "1004622", "2222"]
    yamaha = products.iloc[1].to_dict()
    assert yamaha["description"] == "Use this — commander" and yamaha["brand"] == "Yamaha"
    assert yamaha["category_id"] == "pcmcat186600050004" and yamaha["attributes"] == {"type": "HardGood"}
    assert products.iloc[0]["attributes"] == {"type": "Game", "color": "Black"}
    assert products.iloc[3]["title"] == "Café Olé" and products.iloc[3]["brand"] is None
    reasons = {(r["target_table"], r["location"]): r["reason"] for r in data.quarantine.to_dict("records")}
    assert reasons[("taxonomy", "categories_BestBuy.csv:6")] == "ancestor levels have a gap or a half-empty level"
    assert reasons[("taxonomy", "categories_BestBuy.csv:7")] == "ancestors do not end at the root cat00000"
    assert reasons[("products", "ext_product1_BestBuy.zip!product1_BestBuy.tsv:6")] == "expected 8 fields, got 2"
    blank = reasons[("products", "ext_product1_BestBuy.zip!product1_BestBuy.tsv:7")]
    assert blank == "empty record (every field blank)"
    conflict = reasons[("products", "ext_product2_BestBuy.zip!product2_BestBuy.tsv:3")]
    # the multi-line record is located by its line span; the later file's differing record is quarantined
    assert "conflicts with ext_product1_BestBuy.zip!product1_BestBuy.tsv:3-5 on title" in conflict
    assert data.read == {"taxonomy": 6, "products": 7}
    assert data.accepted == {"taxonomy": 4, "products": 4}


def test_quarantine_keeps_the_raw_record(tmp_path):
    data = load_bestbuy_catalog(make_folder(tmp_path, [("product1", FILE1, "cp1252")]))
    q = data.quarantine[data.quarantine["reason"] == "expected 8 fields, got 2"].iloc[0]
    assert q["location"] == "ext_product1_BestBuy.zip!product1_BestBuy.tsv:6" and q["raw"] == "1111\tToo few fields"


def test_missing_product_column_is_a_file_error(tmp_path):
    folder = make_folder(tmp_path, [("product1", "sku\ttitle\n1\tx\n", "utf-8")])
    with pytest.raises(SourceSchemaError, match=r"product1_BestBuy\.tsv: missing required column\(s\) name"):
        load_bestbuy_catalog(folder)


def test_real_folder(data_root):
    folder = data_root / "bestbuy-catalog"
    if not folder.is_dir():
        pytest.skip("../shared/data/bestbuy-catalog not found")
    data = load_bestbuy_catalog(folder)
    assert data.read == {"taxonomy": 4640, "products": 18744}
    # the only rejects: 584 all-blank rows at the end of product4c
    assert data.quarantined() == {"taxonomy": 0, "products": 584}
    assert set(data.quarantine["reason"]) == {"empty record (every field blank)"}
    tax = data.tables["taxonomy"].set_index("category_id")
    assert tax.loc["abcat0404002", "path"] == [
        "Best Buy", "Cameras & Camcorders", "Digital Cameras", "Point & Shoot Cameras",
        "Point & Shoot Camera Accessories", "Memory Cards & Readers", "Memory Cards", "Compact Flash"]
    assert tax["depth"].max() == 8
    products = data.tables["products"].set_index("product_id")
    assert len(products) == 18160 and products.index.is_unique
    yamaha = products.loc["9498377"]  # HTML with tabs inside a quoted field
    assert yamaha["brand"] == "Yamaha" and yamaha["category_id"] == "pcmcat186600050004"
    assert products.loc["2840965", "title"] == "San Fran Sessions [Box] - CD"
    assert products.loc["2840965", "attributes"]["genre"] == "Folk Rock"
