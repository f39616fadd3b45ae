"""Query/text normalisation, product text, stable hash draws and the train/dev split: one definition used by
ingest, judge, mining, eval.

The split hashes the *normalised* query so that "Deck Over" and "deck  over" always land on the same side;
splitting rows instead would leak a query's labels into both sides. ``stable_hash`` / ``stable_draw`` are the
one sha1 draw every pure-Python per-query sample, split and bucket is computed with (Spark stages use
``strata.sparkfn.hash_bucket``).
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


def product_text(title: str | None, description: str | None) -> str:
    """The text a product is embedded and judged by: title, then description, space-joined, empty parts left
    out (what the BEIR export and ``BeirDataset.doc_text`` use too)."""
    return " ".join(x for x in (title or "", description or "") if x).strip()


def stable_hash(key: str, salt: str | None = None, *, sep: str = "\x00", nbytes: int = 8) -> int:
    """The first ``nbytes`` of sha1(``salt`` + ``sep`` + ``key``) (of ``key`` alone when ``salt`` is None) as a
    big-endian integer: the same on every machine, run and Python (unlike ``hash``)."""
    text = key if salt is None else f"{salt}{sep}{key}"
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:nbytes], "big")


def stable_draw(key: str, salt: str | None = None, *, sep: str = "\x00", nbytes: int = 8,
                scale: int | None = None) -> float:
    """``stable_hash(key, salt, sep=sep, nbytes=nbytes) / scale``: a stable number in [0, 1) per key.
    ``scale`` defaults to 2 ** (8 * nbytes); another one keeps an existing draw's values (the engagement dev
    set divides 4 bytes by ``0xFFFFFFFF``, so its largest hash gives 1.0)."""
    return stable_hash(key, salt, sep=sep, nbytes=nbytes) / (scale if scale is not None else 2 ** (8 * nbytes))


def query_bucket(query: str, salt: str = "strata-v1") -> float:
    """A stable number in [0, 1) from the normalised query; the same on every machine and Python."""
    return stable_draw(normalize_query(query), salt)


def split_of(query: str, dev_fraction: float = 0.2, salt: str = "strata-v1") -> str:
    """'dev' or 'train' for a query, by hash."""
    return "dev" if query_bucket(query, salt) < dev_fraction else "train"
