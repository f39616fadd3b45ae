"""Google product taxonomy (``taxonomy-with-ids.<locale>.txt``): a shared category tree for any catalog.

Lines are ``id - A > B > C``; the parent of a category is the category whose path is its path minus the
last name, so parents are resolved after the whole file is read (they precede children in Google's file,
but nothing here relies on that).
"""

from __future__ import annotations

import re
from pathlib import Path

from strata.config_base import SplitConfig
from strata.sources.base import Collector, SourceData, take
from strata.sources.files import decode_lines, find_file, read_bytes

SOURCE = "google"  # the rows' namespace
ADAPTER = "google-taxonomy"
_LINE = re.compile(r"^\s*(\d+)\s+-\s+(.*\S)\s*$")


def _lines(path: Path):
    """(location, raw text) of every category line: blank and ``#`` comment lines are not records."""
    data, name = read_bytes(path)
    decoded = decode_lines(data, name)
    for n, line in enumerate(decoded.lines, 1):
        text = line.rstrip("\r\n")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        yield f"{name}:{n}", text, decoded.bad.get(n)


def load_google_taxonomy(
    path: Path, *, limit: int | None = None, split: SplitConfig = SplitConfig()
) -> SourceData:
    """The taxonomy file (or a folder holding it) -> taxonomy rows (source ``google``)."""
    file = find_file(
        Path(path),
        ["taxonomy-with-ids.en-US.txt", "taxonomy-with-ids.txt"],
        "Google taxonomy-with-ids",
    )
    out = Collector(ADAPTER, ("taxonomy",))
    parsed: list[tuple[str, str, str, list[str]]] = []
    for loc, text, bad in take(_lines(file), limit):
        out.read("taxonomy")
        m = _LINE.match(text)
        names = [p.strip() for p in m.group(2).split(">")] if m else []
        if bad:
            out.reject("taxonomy", loc, text, bad)
        elif not m:
            out.reject("taxonomy", loc, text, "not of the form 'id - A > B > C'")
        elif not all(names):
            out.reject("taxonomy", loc, text, "empty category name in path")
        else:
            parsed.append((loc, text, m.group(1), names))
    id_of: dict[tuple[str, ...], str] = {}
    for _, _, cid, names in parsed:
        id_of.setdefault(tuple(names), cid)
    for loc, text, cid, names in parsed:
        parent = id_of.get(tuple(names[:-1])) if len(names) > 1 else None
        if len(names) > 1 and parent is None:
            out.reject("taxonomy", loc, text, f"parent category {' > '.join(names[:-1])!r} is not defined")
            continue
        out.accept(
            "taxonomy",
            loc,
            {
                "category_id": cid,
                "source": SOURCE,
                "parent_id": parent,
                "name": names[-1],
                "path": names,
                "depth": len(names),
            },
        )
    out.resolve_conflicts("taxonomy", compare=("parent_id", "name", "path"))
    return out.result()
