"""Order-free, exact table content for the crash and idempotency tests."""

from __future__ import annotations

from strata.tables import Lakehouse, spec


def content(lh: Lakehouse, name: str, exclude: tuple[str, ...] = ()) -> list[tuple]:
    """A table's rows (read through its Delta log) as sorted plain tuples; maps/lists become tuples."""
    def plain(v):
        if isinstance(v, list):
            items = [plain(x) for x in v]
            return tuple(sorted(items, key=repr)) if items and isinstance(v[0], tuple) else tuple(items)
        if isinstance(v, tuple):
            return tuple(plain(x) for x in v)
        return v

    cols = [c for c in spec(name).schema.names if c not in exclude]
    return sorted((tuple(plain(r[c]) for c in cols) for r in lh.read_arrow(name).to_pylist()), key=repr)
