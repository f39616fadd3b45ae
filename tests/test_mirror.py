"""strata.mirror: a run or refresh folder on an object store, worked on through local copies, against a real
S3-compatible server (``s3_server``). Two mirrors of one URI stand for two processes on different nodes."""

from __future__ import annotations

import json

import pytest

from strata.mirror import Mirror, local_copy, remote_for
from strata.storage import location


def _keys(uri: str) -> dict[str, str]:
    from strata.mirror import _files

    root = location(uri)
    return {rel: (root / rel).read_text() for rel in _files(root)}


def test_push_then_pull_elsewhere_deletes_and_skips_excluded(s3_server):
    uri = s3_server("strata-mirror") + "/runs/r1"
    (location(uri) / "lakehouse" / "t" / "part-0.parquet").write_text("table bytes")  # a table of the folder's own

    a = Mirror(uri, exclude=("lakehouse",))
    local = a.pull()
    assert list(local.iterdir()) == []  # the lakehouse is not the mirror's
    (local / "state.json").write_text(json.dumps({"steps": {"ingest": {}}}))
    (local / "models" / "m").mkdir(parents=True)
    (local / "models" / "m" / "config.json").write_text("{}")
    (local / "scratch.txt").write_text("gone soon")
    assert a.push() == 3
    assert a.push() == 0  # nothing changed: nothing written
    (local / "scratch.txt").unlink()
    (local / "state.json").write_text(json.dumps({"steps": {"ingest": {}, "devset": {}}}))
    assert a.push() == 2  # one rewritten, one deleted
    a.close()
    assert not local.exists()

    assert _keys(uri) == {"lakehouse/t/part-0.parquet": "table bytes", "models/m/config.json": "{}",
                          "state.json": json.dumps({"steps": {"ingest": {}, "devset": {}}})}

    b = Mirror(uri, exclude=("lakehouse",))  # the next process, with a fresh local copy
    there = b.pull()
    assert there != local
    assert sorted(p.relative_to(there).as_posix() for p in there.rglob("*") if p.is_file()) == [
        "models/m/config.json", "state.json"]
    assert b.uri_for(there / "models" / "m") == f"{uri}/models/m"
    assert remote_for(there / "models" / "m") == f"{uri}/models/m"
    assert local_copy(f"{uri}/models/m") == there / "models" / "m"  # served from the mirror, not downloaded
    b.close()
    assert remote_for(there / "models") == str(there / "models")  # closed: no longer stands for the URI


def test_local_copy_downloads_a_model_folder_once(s3_server, tmp_path):
    uri = s3_server("strata-models") + "/registry/model-1"
    (location(uri) / "config.json").write_text('{"a": 1}')
    (location(uri) / "1_Pooling" / "config.json").write_text("{}")
    got = local_copy(uri)
    assert (got / "config.json").read_text() == '{"a": 1}' and (got / "1_Pooling" / "config.json").is_file()
    assert local_copy(uri + "/") == got
    assert local_copy(str(tmp_path)) == tmp_path
    with pytest.raises(FileNotFoundError, match="no objects"):
        local_copy(s3_server("strata-models") + "/registry/missing")


def test_state_json_goes_up_last(s3_server, monkeypatch):
    import strata.mirror as mirror

    uri = s3_server("strata-order") + "/state"
    m = Mirror(uri)
    local = m.pull()
    for rel in ("state.json", "runs/r1/state.json", "runs/r1/model/weights.safetensors", "mlruns/meta.yaml"):
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_text(rel)
    order = []
    real = mirror.shutil.copyfileobj

    def record(src, out, *a):
        order.append(src.name[len(str(local)) + 1:])
        return real(src, out, *a)

    monkeypatch.setattr(mirror.shutil, "copyfileobj", record)
    m.push()
    m.close()
    assert order[-2:] == ["runs/r1/state.json", "state.json"]  # state files after all others, the top one last


def test_a_local_path_is_refused():
    with pytest.raises(ValueError, match="local path"):
        Mirror("/tmp/somewhere")
