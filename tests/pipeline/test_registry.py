"""The refresh's model registry when its state folder is in a bucket: versions are named by their URI there, and
the next night, on another node's copy of the folder, finds the champion and reads it."""

from __future__ import annotations

from strata.mirror import Mirror, local_copy
from strata.pipeline.registry import Registry


def test_a_registry_in_a_bucket_survives_the_move_to_another_node(s3_server, tmp_path):
    model = tmp_path / "trained"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 8}')
    uri = s3_server("strata-registry") + "/state"

    night1 = Mirror(uri)
    local = night1.pull()
    reg = Registry((local / "mlruns").as_uri(), "strata-retriever", publish=night1.uri_for)
    v = reg.register(model, local / "models", {"origin": "bootstrap"})
    reg.promote(v.version)
    assert v.source.startswith(f"{uri}/models/model-")
    night1.push()
    night1.close()

    night2 = Mirror(uri)
    there = night2.pull()
    champ = Registry((there / "mlruns").as_uri(), "strata-retriever").champion()
    assert champ is not None and champ.version == v.version and champ.source == v.source
    copy = local_copy(champ.source)
    assert copy.parent == there / "models" and (copy / "config.json").read_text() == '{"hidden_size": 8}'
    night2.close()
