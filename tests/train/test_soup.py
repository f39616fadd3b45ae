"""Model soup: the saved average is the element-wise mean of the ingredients and reloads as a working
sentence-transformers model; ingredients that do not match are an error."""

from __future__ import annotations

import pytest
import torch

from strata.train.soup import average_models


def _perturbed(src: str, out, delta: float) -> str:
    from sentence_transformers import SentenceTransformer

    m = SentenceTransformer(src, device="cpu", local_files_only=True)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(delta)
    m.save(str(out))
    return str(out)


def test_soup_is_the_mean_of_the_ingredients(tiny_st_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    a = _perturbed(tiny_st_model, tmp_path / "a", 0.01)
    b = _perturbed(tiny_st_model, tmp_path / "b", -0.03)
    out = average_models([a, b], tmp_path / "soup")
    soup = SentenceTransformer(str(out), device="cpu", local_files_only=True)
    sa, sb = (SentenceTransformer(p, device="cpu", local_files_only=True).state_dict() for p in (a, b))
    for k, v in soup.state_dict().items():
        want = (sa[k] + sb[k]) / 2 if v.is_floating_point() else sa[k]
        assert torch.allclose(v, want, atol=1e-6), k
    # float weights really moved: the mean of +0.01 and -0.03 is -0.01 from the start
    base = SentenceTransformer(tiny_st_model, device="cpu", local_files_only=True).state_dict()
    k = next(k for k, v in base.items() if v.is_floating_point())
    assert torch.allclose(soup.state_dict()[k], base[k] - 0.01, atol=1e-6)
    emb = soup.encode(["cordless drill"], normalize_embeddings=True)
    assert emb.shape[0] == 1 and abs(float((emb ** 2).sum()) - 1) < 1e-5


def test_weighted_soup_extrapolates_along_a_fine_tune(tiny_st_model, tmp_path):
    """Weights -0.5, 1.5 on (start, fine-tune): start + 1.5 x (fine-tune - start)."""
    from sentence_transformers import SentenceTransformer

    a = _perturbed(tiny_st_model, tmp_path / "a", 0.02)
    out = average_models([tiny_st_model, a], tmp_path / "x", weights=[-0.5, 1.5])
    got = SentenceTransformer(str(out), device="cpu", local_files_only=True).state_dict()
    base = SentenceTransformer(tiny_st_model, device="cpu", local_files_only=True).state_dict()
    for k, v in got.items():
        want = base[k] + 0.03 if v.is_floating_point() else base[k]
        assert torch.allclose(v, want, atol=1e-6), k
    with pytest.raises(ValueError, match="sum to 1"):
        average_models([tiny_st_model, a], tmp_path / "y", weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="one per model"):
        average_models([tiny_st_model, a], tmp_path / "y", weights=[1.0])


def test_soup_rejects_one_model_and_mismatched_ingredients(tiny_st_model, tmp_path):
    from strata.embed.encoder import resolve_model

    with pytest.raises(ValueError, match="at least 2"):
        average_models([tiny_st_model], tmp_path / "x")
    with pytest.raises(ValueError, match="no modules.json"):
        average_models([tiny_st_model, tmp_path], tmp_path / "z")
    # the 6-layer packaged model has parameters the 1-layer tiny model lacks
    with pytest.raises(ValueError, match="different parameters"):
        average_models([tiny_st_model, resolve_model("baseline")], tmp_path / "y")


def test_cli_soup_writes_a_model_and_reports_mismatches(tiny_st_model, tmp_path):
    from typer.testing import CliRunner

    from strata.cli import app
    from strata.embed.encoder import resolve_model

    a = _perturbed(tiny_st_model, tmp_path / "a", 0.02)
    r = CliRunner().invoke(app, ["soup", "--model", a, "--model", tiny_st_model, "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / "modules.json").is_file()
    r = CliRunner().invoke(app, ["soup", "--model", tiny_st_model, "--model", a, "--weight", "-1", "--weight", "2",
                                 "--out", str(tmp_path / "w")])
    assert r.exit_code == 0, r.output
    assert '"weights": [' in r.output and (tmp_path / "w" / "modules.json").is_file()
    r = CliRunner().invoke(app, ["soup", "--model", tiny_st_model, "--model", a, "--weight", "1", "--weight", "1",
                                 "--out", str(tmp_path / "w2")])
    assert r.exit_code == 2 and "sum to 1" in r.output
    r = CliRunner().invoke(app, ["soup", "--model", tiny_st_model, "--model", resolve_model("baseline"),
                                 "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "different parameters" in r.output
