"""Child process of test_memory_budget: run stages on a warm-up lakehouse, then on the main one; report peaks.

    python tests/scale/stage_memory.py OUT.json WARM_LH MAIN_LH features embed mine   # the stages
    python tests/scale/stage_memory.py OUT.json WARM_LH MAIN_LH full_read             # full-table version

The steps run first on WARM (a tiny catalog: Spark and Ray allocate their pools, libraries load, the encoder
actor is built once), then on MAIN. The test runs this twice, with MAIN = SMALL and MAIN = LARGE, and
compares the two main passes: both processes have the same history up to that pass, so the difference is
what the larger input itself cost. (Comparing a first pass on SMALL with a second pass on LARGE in one
process, as this test first did, also counts what any second pass costs: a second pass over a copy of SMALL
grew the driver's anonymous memory by ~150 MB, as much as the input growth the test looks for.)

Which memory, sampled every 50 ms:

- ``driver_mb``: resident memory (RSS) of this process. The Spark Connect server (Sail) is embedded in it
  (``Engines`` starts it in-process), so every byte Spark holds for a query is counted here too.
- ``driver_anon_mb``: the anonymous part of that RSS (``RssAnon``): heap and arenas, i.e. where a collect /
  toPandas / to_pandas / Python row list / Arrow buffer lands, so the budget is on it. The rest of RSS is
  shared or file-backed: the Ray object store's pages the driver touched (``driver_shmem_mb``: one step's
  blocks at a time, but the store hands out fresh pages, so this creeps up with the number of steps though
  it is Ray's own bounded store) and mapped files (libraries, model, spilled vectors: page cache).
- ``ray_mb``: unique memory (USS) summed over this process's children: the local Ray (GCS, raylet) and its
  workers, i.e. the embedding actors. USS leaves out shared pages (libraries, the object store's shared
  memory), which RSS would count once per worker. Reported, not budgeted: an actor holds the model and one
  block, by construction.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CATALOG = "bestbuy"


def _status() -> tuple[int, int, int]:
    """(RSS, RssAnon, RssShmem) of this process in bytes, read together from /proc/self/status (Linux)."""
    got = {"VmRSS:": 0, "RssAnon:": 0, "RssShmem:": 0}
    with open("/proc/self/status") as fh:
        for line in fh:
            parts = line.split()
            if parts and parts[0] in got:
                got[parts[0]] = int(parts[1]) * 1024
    return got["VmRSS:"], got["RssAnon:"], got["RssShmem:"]


class Peak:
    """Peak driver RSS (and its anonymous and shared parts) and children USS while the ``with`` block runs."""

    def __init__(self, every: float = 0.05):
        import psutil

        self.me, self.every = psutil.Process(), every
        self.driver = self.anon = self.ray = self.shmem = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            rss, anon, shmem = _status()
            self.driver, self.anon, self.shmem = max(self.driver, rss), max(self.anon, anon), max(self.shmem, shmem)
            total = 0
            for p in self.me.children(recursive=True):
                try:
                    total += p.memory_full_info().uss
                except psutil.Error:
                    pass
            self.ray = max(self.ray, total)
            self._stop.wait(self.every)

    def __enter__(self) -> "Peak":
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def _step(eng, lh, step: str, embed_cfg, out: dict) -> None:
    from strata.config_base import SplitConfig

    work = lh.root.parent
    if step == "features":
        from strata.features.job import run_features

        run_features(eng.spark, lh, "scale")
    elif step == "embed":
        from strata.embed.stage import embed_catalog

        embed_catalog(eng, lh, CATALOG, embed_cfg, work / "embed")
    elif step == "mine":
        from strata.mine.config import MineConfig
        from strata.mine.job import run_mining

        run_mining(eng, lh, MineConfig(catalogs=[CATALOG], max_queries=300), SplitConfig(), embed_cfg, None,
                   "scale", use_ray=True)
    elif step == "full_read":
        # What embed/stage.py and mine/job.py did before streaming: the catalog's rows collected to the
        # driver, then one text per product.
        from pyspark.sql import functions as F

        from strata.text import product_text

        rows = (lh.read(eng.spark, "products").where(F.col("source") == CATALOG)
                .select("product_id", "title", "description").orderBy("product_id").toPandas())
        texts = [product_text(t, d) for t, d in zip(rows["title"], rows["description"])]
        out["full_read_text_mb"] = round(sum(map(len, texts)) / 1e6, 1)
        del rows, texts
    else:
        raise SystemExit(f"unknown step {step!r}")


def run(warm: Path, main: Path, steps: list[str]) -> dict:
    from strata.embed.config import EmbedConfig
    from strata.engines import EngineConfig
    from strata.engines import Engines
    from strata.tables import Lakehouse

    out: dict = {}
    with Engines(EngineConfig(ray_num_cpus=2)) as eng:
        eng.spark.sql("SELECT 1").collect()
        eng.ray()
        for label, root in (("warm", warm), ("main", main)):
            lh = Lakehouse(root)
            # A short max_seq_length keeps the encoder's compute small; the text is still read, tokenized and
            # moved whole, which is what the memory is about.
            embed_cfg = EmbedConfig(max_seq_length=8, batch_size=128, actors=1, actor_cpus=0.5,
                                    stream_rows=int(os.environ.get("STRATA_SCALE_STREAM_ROWS", "300")),
                                    cache_dir=str(root.parent / "cache"),
                                    ray_min_texts=0)  # every step on Ray, as a catalog-sized run embeds
            for step in steps:
                t0 = time.perf_counter()
                with Peak() as peak:
                    _step(eng, lh, step, embed_cfg, out)
                out.setdefault(label, {})[step] = {"seconds": round(time.perf_counter() - t0, 1),
                                                   "driver_mb": round(peak.driver / 1e6, 1),
                                                   "driver_anon_mb": round(peak.anon / 1e6, 1),
                                                   "driver_shmem_mb": round(peak.shmem / 1e6, 1),
                                                   "ray_mb": round(peak.ray / 1e6, 1)}
                print(label, step, out[label][step], flush=True)
    for key in ("driver_mb", "driver_anon_mb", "ray_mb"):
        out[f"peak_{key}"] = max(v[key] for v in out["main"].values())  # the main pass's peak
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))
    result = run(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
    Path(sys.argv[1]).write_text(json.dumps(result, indent=2))
    sys.stdout.flush()
    os._exit(0)  # skip delta-rs/Ray interpreter teardown (see tests/conftest.py)
