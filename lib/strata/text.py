"""Query/text normalisation and the train/dev split: one definition used by ingest, judge, mining, eval.

The split hashes the *normalised* query so that "Deck Over" and "deck  over" always land on the same side;
splitting rows instead would leak a query's labels into both sides.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WS = re.compile(r"\s+")


def normalize_query(text: str | None) -> str:
    """NFKC, lower case, whitespace collapsed and stripped. ``None`` becomes ''."""
    if text is None:
        return ""
    return _WS.sub(" ", unicodedata.normalize("NFKC", str(text))).strip().lower()


def clean_text(text: str | None) -> str:
    """Product text: NFKC and whitespace collapsed, case kept (the encoders are uncased anyway)."""
    if text is None:
        return ""
    return _WS.sub(" ", unicodedata.normalize("NFKC", str(text))).strip()


def query_bucket(query: str, salt: str = "strata-v1") -> float:
    """A stable number in [0, 1) from the normalised query; the same on every machine and Python."""
    digest = hashlib.sha1(f"{salt}\x00{normalize_query(query)}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(query: str, dev_fraction: float = 0.2, salt: str = "strata-v1") -> str:
    """'dev' or 'train' for a query, by hash."""
    return "dev" if query_bucket(query, salt) < dev_fraction else "train"
