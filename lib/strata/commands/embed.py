"""`strata embed`: a catalog's vectors and FAISS index, as files a serving or mining job loads."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from strata.embed.config import EmbedConfig
from strata.commands.options import ConfigOpt, ProfileOpt, SetOpt, engines_for, load_or_exit


def register(app: typer.Typer) -> None:
    app.command()(embed)


def embed(
    lakehouse: str = typer.Option(..., "--lakehouse", help="table root holding `products`"),
    catalog: str = typer.Option(..., "--catalog", help="products namespace, e.g. homedepot, bestbuy"),
    out: Path = typer.Option(..., "--out", help="folder for ids.txt, vectors.npy, index.faiss, meta.json"),
    model: str = typer.Option("baseline", "--model", help="baseline | MODEL_DIR"),
    batch_size: int = typer.Option(128, "--batch-size"),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="reuse vectors by text hash"),
    actor_cpus: float = typer.Option(0.5, "--actor-cpus"),
    actors: int = typer.Option(1, "--actors"),
    index: str = typer.Option("auto", "--index", help="auto | flat | hnsw | ivfpq (vectors never all in RAM)"),
    profile: str = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Embed every product of a catalog through Ray Data and build its FAISS index."""
    from strata.embed.stage import embed_catalog
    from strata.tables import Lakehouse

    cfg = EmbedConfig(model=model, batch_size=batch_size, max_seq_length=max_seq_length,
                      cache_dir=str(cache_dir) if cache_dir else None, actor_cpus=actor_cpus, actors=actors,
                      index=index)
    with engines_for(load_or_exit(profile, config, set_)) as eng:  # the profile's engines (Spark, Ray)
        result = embed_catalog(eng, Lakehouse(lakehouse), catalog, cfg, out)
    print(json.dumps(asdict(result), indent=2))
