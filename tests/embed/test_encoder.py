"""Model resolution, ids and encoding of the packaged baseline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from strata.embed.encoder import (
    BASELINE,
    ModelNotFoundError,
    encode,
    load_encoder,
    model_id,
    resolve_model,
)


def test_baseline_resolves_to_packaged_folder() -> None:
    path = Path(resolve_model(BASELINE))
    assert (path / "modules.json").is_file()
    assert (path / "model.safetensors").is_file()


def test_model_id_is_stable_and_names_the_weights(tmp_path: Path) -> None:
    first = model_id(BASELINE)
    assert first == model_id(BASELINE) == model_id(resolve_model(BASELINE))
    name, sha = first.split("@")
    assert name == "all-MiniLM-L6-v2" and len(sha) == 12
    # A copy with changed weights gets its dir name and a different hash.
    copy = tmp_path / "my-model"
    copy.mkdir()
    (copy / "config.json").write_text("{}")
    (copy / "model.safetensors").write_bytes(b"not the same weights")
    other = model_id(str(copy))
    assert other.startswith("my-model@") and other.split("@")[1] != sha


@pytest.mark.parametrize("bad", ["no/such/model-dir", "sentence-transformers/all-MiniLM-L6-v2"])
def test_resolve_model_refuses_missing_dirs_and_hub_ids(bad: str) -> None:
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        resolve_model(bad)


def test_resolve_model_refuses_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a sentence-transformers"):
        resolve_model(str(tmp_path))


def test_encode_returns_normalised_float32_rows() -> None:
    model = load_encoder(BASELINE, max_seq_length=32)
    assert model.max_seq_length == 32
    vecs = encode(model, ["cordless drill", "garden hose", "cordless drill"], batch_size=2)
    assert vecs.dtype == np.float32 and vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vecs[0], vecs[2], atol=1e-6)
    assert float(vecs[0] @ vecs[1]) < 0.9
    assert encode(model, []).shape == (0, 384)


def test_bf16_backend_stays_within_a_hair_of_fp32(monkeypatch):
    """bf16 autocast (about 2x on CPUs with AMX) keeps the vectors a retrieval run ranks by: cosine > 0.999 to
    fp32 row for row, float32 out, and `auto` picks it only where the CPU computes bf16 natively."""
    from strata.embed import encoder as enc_mod
    from strata.precision import native_bf16

    texts = ["cordless drill", "Simpson Strong-Tie 12-Gauge Angle", "door hinge", "garden hose 50 ft"]
    fp32 = encode(load_encoder("baseline", max_seq_length=48), texts, batch_size=2)
    bf16 = encode(load_encoder("baseline", max_seq_length=48, backend="torch-bf16"), texts, batch_size=2)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert (fp32 * bf16).sum(1).min() > 0.999
    assert enc_mod.resolve_backend("auto") == ("torch-bf16" if native_bf16("cpu") else "torch")
    assert enc_mod.resolve_backend("auto", device="cuda") == "torch"
    with pytest.raises(ValueError, match="one of torch, torch-bf16"):
        enc_mod.resolve_backend("tensorrt")
