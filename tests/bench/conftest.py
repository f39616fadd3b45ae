"""Load a ``bench/`` script as a module, the way it runs: with ``bench/`` on ``sys.path`` for its siblings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench_script(name: str) -> ModuleType:
    """``bench/NAME.py`` as module ``bench_NAME_mod`` (registered in ``sys.modules``: dataclasses resolve their
    module through it). ``bench/`` stays on ``sys.path`` only while the script's imports run."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}_mod", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))
