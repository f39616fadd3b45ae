"""The ONNX Runtime backends against sentence-transformers on the packaged MiniLM: same vectors (fp32), close
vectors (int8), input order kept, the export cached by model id."""

from __future__ import annotations

import json

import numpy as np
import pytest

from strata.embed.encoder import encode, load_encoder, model_id, resolve_model

TEXTS = ["cordless drill", "Simpson Strong-Tie 12-Gauge Angle", "l bracket", "BEHR Premium Textured DeckOver "
         "5-gal. #SC-141 Tugboat Wood and Concrete Coating", "door hinge", "x" * 300, "garden hose 50 ft"]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("onnx-cache")
    mp.setenv("STRATA_ONNX_CACHE", str(root))
    yield root
    mp.undo()


def test_fp32_matches_torch_and_int8_stays_close(onnx_cache):
    torch_vecs = encode(load_encoder("baseline", max_seq_length=48), TEXTS, batch_size=3)
    fp32 = encode(load_encoder("baseline", max_seq_length=48, backend="onnx", threads=1), TEXTS, batch_size=3)
    int8 = encode(load_encoder("baseline", max_seq_length=48, backend="onnx-int8", threads=1), TEXTS, batch_size=3)
    assert fp32.dtype == np.float32 and fp32.shape == torch_vecs.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cos32, cos8 = (fp32 * torch_vecs).sum(1), (int8 * torch_vecs).sum(1)
    assert cos32.min() > 0.9999, cos32  # the same model, row for row (input order kept)
    assert cos8.min() > 0.95 and np.median(cos8) > 0.985, cos8  # int8 weights: close, not equal
    # the similarities between the texts (what retrieval ranks by) barely move under int8
    iu = np.triu_indices(len(TEXTS), 1)
    sim_t, sim_8 = (torch_vecs @ torch_vecs.T)[iu], (int8 @ int8.T)[iu]
    assert np.corrcoef(sim_t, sim_8)[0, 1] > 0.95 and np.abs(sim_t - sim_8).max() < 0.1
    assert encode(load_encoder("baseline", backend="onnx-int8"), []).shape == (0, 384)


def test_the_export_is_cached_by_model_id(onnx_cache):
    load_encoder("baseline", backend="onnx")
    folder = onnx_cache / model_id("baseline")
    meta = json.loads((folder / "strata_onnx.json").read_text())
    assert meta["pooling"] == "mean" and meta["normalize"] and meta["source"] == resolve_model("baseline")
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    load_encoder("baseline", backend="onnx-int8")  # both variants come from the one export
    assert (folder / "model.onnx").stat().st_mtime_ns == stamp and (folder / "model_int8.onnx").is_file()


def test_unsupported_setups_are_refused(tmp_path):
    with pytest.raises(ValueError, match="runs on CPU"):
        load_encoder("baseline", backend="onnx", device="cuda")
    from strata.embed.onnx import _pooling

    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "",
                                                        "type": "sentence_transformers.models.Transformer"}]))
    with pytest.raises(ValueError, match="no Pooling module"):
        _pooling(tmp_path)
