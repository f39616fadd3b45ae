"""`strata infra render`: marked blocks replaced from the graph, everything else left as written."""

from __future__ import annotations

import pytest

from strata.ops.infra import InfraDrift, render_text

BLOCKS = {"x": lambda indent: [f"{indent}rendered: 1"]}


def test_only_the_marked_block_changes_and_rendering_is_idempotent():
    text = "head: 1\n  # >>> strata infra render: x\n  old: 2\n  # <<< strata infra render\ntail: 3\n"
    out = render_text(text, BLOCKS)
    assert out == "head: 1\n  # >>> strata infra render: x\n  rendered: 1\n  # <<< strata infra render\ntail: 3\n"
    assert render_text(out, BLOCKS) == out


@pytest.mark.parametrize("text,message", [
    ("# >>> strata infra render: x\nold\n", "no end marker"),
    ("# >>> strata infra render: y\n# <<< strata infra render\n", "unknown block 'y'"),
    ("nothing marked\n", r"no marker for block\(s\) \['x'\]"),
])
def test_broken_markers_are_clear_errors(text, message):
    with pytest.raises(InfraDrift, match=message):
        render_text(text, BLOCKS, "f.yml")
