"""Issue 11.6 - no pickle loading of untrusted files: weights are safetensors, state files load weights-only.

A static scan of every module in ``lib/strata`` (AST, so comments and strings do not count) forbids the
pickle family (pickle, dill, cloudpickle, joblib, shelve, marshal, jsonpickle, ``pd.read_pickle``), unsafe
YAML loaders, ``eval``/``exec``, ``trust_remote_code=True``, ``use_safetensors=False``, and requires
``torch.load(..., weights_only=True)`` and ``np.load(..., allow_pickle=False)`` spelled out. The scanner is
checked against a snippet holding each violation (so it can fail), and two real loaders are fed a malicious
pickle whose unpickling would create a marker file: neither runs it.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

LIB = Path(__file__).resolve().parents[2] / "lib" / "strata"

PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal",
                  "jsonpickle", "pickletools"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "<non-constant>"
    return "<missing>"


def violations(source: str, filename: str = "<src>") -> list[str]:
    out = []
    tree = ast.parse(source, filename)
    torch_alias, numpy_alias = {"torch"}, {"np", "numpy"}
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PICKLE_MODULES:
                    out.append(f"{where}: import {a.name}")
                if a.name == "torch":
                    torch_alias.add(a.asname or "torch")
                if a.name == "numpy":
                    numpy_alias.add(a.asname or "numpy")
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")[0]
            if mod in PICKLE_MODULES:
                out.append(f"{where}: from {node.module} import ...")
            for a in node.names:
                if mod in ("torch", "numpy") and a.name == "load":
                    out.append(f"{where}: from {mod} import load (call it as {mod}.load with the safe flag)")
                if a.name in ("read_pickle", "unsafe_load", "full_load"):
                    out.append(f"{where}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, last = name.rpartition(".")
            if last == "read_pickle" or name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all"):
                out.append(f"{where}: {name}()")
            if name in ("yaml.load", "yaml.load_all") and "Safe" not in ast.unparse(node):
                out.append(f"{where}: {name}() without a SafeLoader")
            if name in ("eval", "exec"):
                out.append(f"{where}: builtin {name}()")
            if head in torch_alias and last == "load" and _kw(node, "weights_only") is not True:
                out.append(f"{where}: {name}() without weights_only=True")
            if head in numpy_alias and last == "load" and _kw(node, "allow_pickle") is not False:
                out.append(f"{where}: {name}() without allow_pickle=False")
            for flag, bad in (("trust_remote_code", True), ("use_safetensors", False), ("weights_only", False),
                              ("allow_pickle", True)):
                if _kw(node, flag) is bad:
                    out.append(f"{where}: {name}({flag}={bad})")
    return out


def test_scanner_catches_each_kind_of_violation():
    bad = '''
import pickle
import dill as d
from joblib import load
from pandas import read_pickle
import torch as T
import numpy
x = pickle.loads(b"")
df.read_pickle("f")
T.load("f")
torch.load("f", weights_only=False)
numpy.load("f.npy")
np.load("f.npy", allow_pickle=True)
yaml.load(s)
eval("1")
AutoModel.from_pretrained("d", trust_remote_code=True)
AutoModel.from_pretrained("d", use_safetensors=False)
'''
    found = violations(bad)
    assert len(found) >= 14, found
    for word in ("import pickle", "import dill", "from joblib", "read_pickle", "T.load", "weights_only",
                 "numpy.load", "allow_pickle=True", "yaml.load", "builtin eval", "trust_remote_code",
                 "use_safetensors"):
        assert any(word in v for v in found), word
    ok = '''
import torch, numpy as np, yaml
torch.load("f", map_location="cpu", weights_only=True)
np.load("f.npz", allow_pickle=False)
yaml.safe_load(s); yaml.load(s, Loader=yaml.SafeLoader)
model.eval()
'''
    assert violations(ok) == []


def test_lib_strata_loads_nothing_through_pickle():
    files = sorted(LIB.rglob("*.py"))
    assert len(files) > 50
    found = [v for f in files for v in violations(f.read_text("utf-8"), str(f.relative_to(LIB.parent)))]
    assert found == []


def test_no_pickled_artifacts_are_shipped_in_the_package():
    suffixes = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt", ".npy", ".npz"}
    assert [str(p) for p in LIB.rglob("*") if p.suffix in suffixes] == []


class _Payload:
    """Unpickling this creates ``marker``: what an attacker's checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_payload_works_with_plain_pickle(tmp_path):
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Payload(marker)))  # the control: plain pickle runs it
    assert marker.exists()


def test_a_malicious_training_checkpoint_is_not_executed(tmp_path):
    pytest.importorskip("torch")
    from strata.train.runner import STATE_FILE, latest_checkpoint

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "storage" / "checkpoint_000001"
    ckpt.mkdir(parents=True)
    (ckpt / STATE_FILE).write_bytes(pickle.dumps({"step": 7, "x": _Payload(marker)}, protocol=2))
    assert latest_checkpoint(tmp_path / "storage") == (None, -1)  # unreadable -> skipped, not run
    assert not marker.exists()


def test_a_malicious_embedding_cache_shard_is_not_executed(tmp_path):
    from strata.embed.cache import EmbeddingCache

    marker = tmp_path / "pwned"
    shard_dir = tmp_path / "cache" / "m@1" / "seqdefault"
    shard_dir.mkdir(parents=True)
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    np.savez(shard_dir / "shard-000.npz", keys=evil, vecs=np.zeros((1, 4), dtype=np.float32))
    try:
        EmbeddingCache(tmp_path / "cache", "m@1", None)
    except ValueError as e:  # numpy refuses object arrays with allow_pickle=False
        assert "allow_pickle" in str(e)
    assert not marker.exists()
