"""strata.ship: a model folder reaches Ray workers through the object store when their node lacks the path."""

from __future__ import annotations

from pathlib import Path

from strata.ship import Shipped, folder_digest, here, ship


def _folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"a": 1}')
    (root / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    return root


def test_a_folder_reaches_a_worker_that_lacks_its_path(engines, tmp_path):
    ray = engines.ray()
    src = _folder(tmp_path / "model")
    shipped = ship(ray, src)
    assert isinstance(shipped, Shipped) and shipped.digest == folder_digest(src) and str(shipped) == str(src)

    @ray.remote(num_cpus=0.1)
    def open_on_worker(folder):
        from strata.ship import here

        p = Path(here(folder))
        return str(p), (p / "config.json").read_text(), (p / "sub" / "weights.bin").read_bytes()

    # the path exists with the same content (one machine, a shared filesystem): used as is
    path, cfg, weights = ray.get(open_on_worker.remote(shipped))
    assert path == str(src) and cfg == '{"a": 1}'
    # the worker's node lacks the folder (moved away here): a copy of the same content from the object store
    src.rename(tmp_path / "elsewhere")
    path, cfg, weights = ray.get(open_on_worker.remote(shipped))
    assert path != str(src) and cfg == '{"a": 1}' and weights == bytes(range(256)) * 64
    assert folder_digest(path) == shipped.digest
    assert ray.get(open_on_worker.remote(shipped))[0] == path  # written once per node, then reused
    # a different folder at the same path (a stale copy on that node) is not used either
    _folder(src)
    (src / "config.json").write_text('{"a": 2}')
    assert ray.get(open_on_worker.remote(shipped))[1] == '{"a": 1}'


def test_names_and_files_pass_through(engines, tmp_path):
    ray = engines.ray()
    (tmp_path / "judge.gguf").write_bytes(b"x")
    assert ship(ray, "baseline") == "baseline"
    assert ship(ray, str(tmp_path / "judge.gguf")) == str(tmp_path / "judge.gguf")
    assert here("baseline") == "baseline"


def test_an_unchanged_folder_is_put_once_per_job(engines, tmp_path):
    ray = engines.ray()
    src = _folder(tmp_path / "model")
    first = ship(ray, src)
    assert ship(ray, src) is first  # mining embeds a catalog in many calls: one copy in the object store
    (src / "config.json").write_text('{"a": 22}')  # changed (size): shipped again, with its new digest
    second = ship(ray, src)
    assert second is not first and second.digest == folder_digest(src) != first.digest


def test_a_new_cluster_gets_its_own_copy(tmp_path):
    """Job ids start over with every new local cluster (a process that runs the graph twice, as bench_ddp does):
    a copy put into the last cluster's object store must not be handed to the next one."""
    from types import SimpleNamespace

    src = _folder(tmp_path / "model")
    puts: list[dict] = []

    def cluster(node: str):
        ctx = SimpleNamespace(get_node_id=lambda: node, get_job_id=lambda: "01000000")
        return SimpleNamespace(get_runtime_context=lambda: ctx, put=lambda obj: puts.append(obj) or f"ref-{node}")

    first, second = ship(cluster("node-a"), src), ship(cluster("node-b"), src)
    assert (first.ref, second.ref) == ("ref-node-a", "ref-node-b") and len(puts) == 2
    assert ship(cluster("node-b"), src) is second and len(puts) == 2
