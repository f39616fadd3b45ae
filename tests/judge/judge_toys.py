"""Toy catalog + graded pairs shared by the judge tests."""

from __future__ import annotations

import pandas as pd

_PRODUCTS = {
    "p1": "DEWALT 20V MAX Cordless Drill Driver Kit",
    "p2": "Milwaukee M18 Cordless Hammer Drill",
    "p3": "Drill Bit Set Titanium 21 piece",
    "p4": "Garden Hose 50 ft Heavy Duty",
    "p5": "Behr Premium Deck Over Paint 1 gal",
    "p6": "Interior Latex Paint Eggshell White",
    "p7": "Paint Roller Kit 9 in",
    "p8": "LED Light Bulb 60W Equivalent Soft White",
    "p9": "Ceiling Fan with Light Kit 52 in",
    "p10": "Kitchen Faucet Pull Down Stainless",
}
_QUERIES = {
    "cordless drill": {"p1": 2, "p2": 2, "p3": 1, "p4": 0, "p8": 0, "p10": 0},
    "deck paint": {"p5": 2, "p6": 1, "p7": 1, "p4": 0, "p9": 0},
    "light bulb": {"p8": 2, "p9": 1, "p1": 0, "p6": 0},
    "kitchen faucet": {"p10": 2, "p4": 0, "p5": 0, "p3": 0},
}


def synthetic_pairs(repeat: int = 10) -> pd.DataFrame:
    rows = []
    for q, rel in _QUERIES.items():
        for pid, g in rel.items():
            rows.append({"source": "toy", "query": q, "query_norm": q, "product_id": pid,
                         "product_text": _PRODUCTS[pid], "grade": g, "split": "train"})
    return pd.concat([pd.DataFrame(rows)] * repeat, ignore_index=True)
