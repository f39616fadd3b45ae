"""``data:`` in a profile: which datasets are ingested and from where, with the confinement of source paths.

Source paths are confined: a relative path must stay inside ``data.root`` (after resolving ``..`` and
symlinks), an absolute one must lie inside ``data.root``, ``$STRATA_DATA``, the default ``../shared/data`` or
a folder listed in ``data.allowed_roots``. A retailer's own table (``name: table``) is mapped by
``TableSourceConfig``, checked here at config time (``check_mapping``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from strata.config_base import ConfigError, StrictModel

# canonical column -> required?
COLUMNS = {
    "products": {"product_id": True, "title": True, "description": False, "brand": False, "category_id": False,
                 "attributes": False},
    "labels": {"query": True, "product_id": True, "label": True},
}
GRADES = (0, 1, 2)


def check_mapping(cfg: "TableSourceConfig") -> None:
    """Config-time checks: every required canonical column mapped, no unknown one, one grade rule."""
    known = COLUMNS[cfg.target]
    unknown = sorted(set(cfg.columns) - set(known))
    if unknown:
        raise ValueError(f"table source ({cfg.target}): unknown column(s) {unknown}; map some of {list(known)}")
    missing = [c for c, req in known.items() if req and c not in cfg.columns]
    if missing:
        raise ValueError(f"table source ({cfg.target}): map the required column(s) {missing} in `columns` "
                         "(canonical name: your column name)")
    if cfg.target == "products" and (cfg.grades or cfg.grade_bins or cfg.label_range):
        raise ValueError("table source (products): grades / grade_bins / label_range apply to labels only")
    if cfg.grades is not None and cfg.grade_bins is not None:
        raise ValueError("table source (labels): set grades or grade_bins, not both")
    if cfg.grades is not None:
        bad = {k: v for k, v in cfg.grades.items() if v not in GRADES}
        if bad or not cfg.grades:
            raise ValueError(f"table source (labels): grades must map raw labels to 0, 1 or 2 (got {cfg.grades})")
    if cfg.grade_bins is not None and cfg.grade_bins[0] > cfg.grade_bins[1]:
        raise ValueError(f"table source (labels): grade_bins (partial_at, exact_at) = {cfg.grade_bins} is not "
                         "increasing")
    if cfg.label_range is not None and (cfg.grade_bins is None or cfg.label_range[0] > cfg.label_range[1]):
        raise ValueError("table source (labels): label_range needs grade_bins and lo <= hi")


def default_data_root() -> Path:
    """../shared/data relative to the repo (or the cwd), the layout the project is developed in."""
    here = Path(__file__).resolve()
    for base in [Path.cwd(), *here.parents]:
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return Path.cwd().parent / "shared" / "data"


class TableSourceConfig(StrictModel):
    """How a retailer's own catalog or label table maps onto ``products`` or ``labels`` (source ``table``).

    Read, validated and MERGEd by Spark (``strata.ingest.table_source``): nothing passes through the driver,
    so this is the path for catalogs of millions of products. ``columns`` maps canonical column -> source
    column; an optional canonical column left out is NULL.
    """

    target: Literal["products", "labels"]
    namespace: str = Field(..., min_length=1, description="the `source` value of every row (e.g. 'acme')")
    format: Literal["auto", "parquet", "delta", "csv", "json"] = Field(
        "auto", description="auto: delta if the folder has a _delta_log, else parquet")
    columns: dict[str, str] = Field(default_factory=dict, description="canonical column -> source column")
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV only")
    grades: dict[str, int] | None = Field(None, description="labels: raw label -> grade (0, 1, 2)")
    grade_bins: tuple[float, float] | None = Field(
        None, description="labels: numeric label -> grade: >= second is 2 (exact), >= first is 1, else 0")
    label_range: tuple[float, float] | None = Field(
        None, description="labels with grade_bins: a number outside [lo, hi] is quarantined")

    @model_validator(mode="after")
    def _mapping(self) -> "TableSourceConfig":
        check_mapping(self)
        return self


class SourceConfig(StrictModel):
    """One dataset to ingest: an adapter name and a path (file or folder). ``table``: a catalog or label
    table of the retailer's own, mapped by ``table`` (``TableSourceConfig``)."""

    name: Literal[
        "homedepot", "bestbuy-small", "bestbuy-catalog", "google-taxonomy", "wands", "esci", "beir", "table"
    ]
    path: str = Field(..., description="absolute, or relative to data.root")
    limit: int | None = Field(None, ge=1, description="read at most this many records (demo slices)")
    table: TableSourceConfig | None = None

    @model_validator(mode="after")
    def _table_only_for_table(self) -> "SourceConfig":
        if self.name == "table" and self.table is None:
            raise ValueError("source 'table' needs a `table:` mapping (target, namespace, columns)")
        if self.name != "table" and self.table is not None:
            raise ValueError(f"source {self.name!r} is an adapter; `table:` applies to `name: table` only")
        return self


class DataConfig(StrictModel):
    """Where inputs come from. ``root`` defaults to $STRATA_DATA, else ../shared/data when present.

    Source paths are confined: a relative path must stay inside ``root`` (after resolving ``..`` and
    symlinks), an absolute one must lie inside one of ``allowed_root_paths()``.
    """

    root: str | None = None
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="more folders (absolute) that source paths may point into, besides data.root, "
                    "$STRATA_DATA and the default ../shared/data; e.g. where you downloaded WANDS",
    )
    sources: list[SourceConfig] = Field(default_factory=list)

    @field_validator("allowed_roots")
    @classmethod
    def _absolute_roots(cls, v: list[str]) -> list[str]:
        for r in v:
            if not Path(r).expanduser().is_absolute():
                raise ValueError(f"{r!r} is not an absolute folder (allowed roots are never relative)")
        return v

    def resolved_root(self) -> Path:
        if self.root:
            return Path(self.root).expanduser()
        env = os.environ.get("STRATA_DATA")
        if env:
            return Path(env).expanduser()
        return default_data_root()

    def allowed_root_paths(self) -> list[Path]:
        """Every folder a source path may resolve into (resolved, de-duplicated, in order)."""
        cands = [self.resolved_root()]
        if os.environ.get("STRATA_DATA"):
            cands.append(Path(os.environ["STRATA_DATA"]).expanduser())
        cands.append(default_data_root())
        cands += [Path(r).expanduser() for r in self.allowed_roots]
        out: list[Path] = []
        for c in cands:
            r = c.resolve()
            if r not in out:
                out.append(r)
        return out

    def source_path(self, source: SourceConfig) -> Path:
        """The path to read ``source`` from; ``ConfigError`` if it leaves the allowed roots."""
        where = "data.sources"
        for i, s in enumerate(self.sources):
            if s is source:
                where = f"data.sources[{i}]"
                break
        return self._confined(source.path, f"{where}.path")

    def check_sources(self) -> None:
        """Every source path is confined (``ConfigError`` naming the first that is not)."""
        for i, s in enumerate(self.sources):
            self._confined(s.path, f"data.sources[{i}].path")

    def _confined(self, raw: str, field: str) -> Path:
        p = Path(raw).expanduser()
        root = self.resolved_root()
        allowed = self.allowed_root_paths()
        how = ("move the data under data.root, or allow its folder with data.allowed_roots (config file: "
               "`data: {allowed_roots: ['/abs/folder']}`, CLI: `--set \"data.allowed_roots=['/abs/folder']\"`)")
        if not p.is_absolute():
            if os.path.normpath(p).split(os.sep)[0] == "..":
                raise ConfigError(f"{field}: {raw!r} escapes data.root ({root}) through '..'; a relative source "
                                  f"path must stay inside data.root. Use a path inside it, or an absolute path "
                                  f"and {how}")
            full = root / p
        else:
            full = p
        real = full.resolve()
        if not any(real == a or a in real.parents for a in allowed):
            via = " (through a symlink)" if real != Path(os.path.abspath(full)) else ""
            raise ConfigError(f"{field}: {raw!r} resolves{via} to {real}, outside the allowed data roots "
                              f"({', '.join(str(a) for a in allowed)}); {how}")
        return full
