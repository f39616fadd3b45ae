"""Ray Data embedding equals in-process embedding, row for row, in input order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from strata.embed.config import EmbedConfig
from strata.engines import EngineConfig
from strata.embed.ray_embed import embed_texts, embed_texts_local, torch_threads
from strata.engines import Engines


@pytest.fixture(scope="module")
def ray_engines() -> Iterator[Engines]:
    """A real local Ray with 2 CPUs for this module only (stops only what it started)."""
    eng = Engines(EngineConfig(ray_num_cpus=2))
    eng.ray()
    yield eng
    eng.close()


def _texts(n: int) -> list[str]:
    items = ["cordless drill", "garden hose", "ceiling fan", "paint roller", "toilet seat", "led bulb"]
    # Lengths vary so batches pad differently; every text is distinct so order errors are visible.
    return [f"{items[i % len(items)]} model {i} " + "extra words " * (i % 7) for i in range(n)]


def test_ray_equals_local_and_keeps_input_order(ray_engines: Engines) -> None:
    texts = _texts(300)
    cfg = EmbedConfig(batch_size=16, max_seq_length=32, actors=1, actor_cpus=0.5)
    got = embed_texts(ray_engines, texts, cfg, desc="test")
    want = embed_texts_local(texts, cfg)
    assert got.shape == want.shape == (300, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Order: each row is nearest to its own local row (neighbours differ only by the model number).
    assert np.array_equal(np.argmax(got @ want.T, axis=1), np.arange(300))


def test_empty_input_needs_no_ray_job(ray_engines: Engines) -> None:
    cfg = EmbedConfig(actor_cpus=0.5)
    assert embed_texts(ray_engines, [], cfg).shape == (0, 384)


def test_torch_threads() -> None:
    assert torch_threads(0.5, actors=1, node_cpus=2) == 2  # the 2-core demo: use both cores
    assert torch_threads(1.0, actors=1, node_cpus=2) == 2
    assert torch_threads(0.5, actors=4, node_cpus=2) == 1
    assert torch_threads(4.0, actors=4, node_cpus=8) == 4  # a reservation larger than the share wins
