"""Notebooks: Databricks source files that also run locally, and the one parameter helper they share.

The notebooks in ``notebooks/`` are Databricks *source format* ``.py`` files::

    # Databricks notebook source
    # MAGIC %md
    # MAGIC # Title
    # COMMAND ----------
    P = notebook_params(lakehouse="", out_dir="notebook_out")

They import into a Databricks workspace as notebooks unchanged. Locally this module converts them to
Jupyter notebooks (``to_notebook``; ``%md`` cells become markdown cells, ``%pip`` / ``%sh`` become IPython
magics) and executes them headless with nbclient on this interpreter's kernel (``execute``). The
conversion is deterministic and has an inverse (``to_source``), so a notebook edited in Jupyter can be
written back to the source file: the ``.py`` file is the only copy kept in the repository.

Parameters: ``notebook_params(**defaults)`` decides, per name, in this order:

1. Databricks widgets (``dbutils.widgets``; a text widget is created with the default on first run),
2. a variable of that name already set in the notebook's namespace (papermill's injected cell, or
   ``execute(params=...)``, which injects the same kind of cell at the top),
3. the environment variable ``STRATA_NB_<NAME>`` (upper case),
4. the default.

Values are cast to the default's type (widgets and env vars are strings). ``key_outputs`` is the last
cell of every notebook: it checks the files and values the notebook promised exist and records them in
``OUT_DIR/key_outputs.json``, which the headless tests read.

CLI: ``python -m strata.notebook run notebooks/01_data_tour.py --out-dir /tmp/nb -p lakehouse=/tmp/lh``
and ``python -m strata.notebook convert notebooks/01_data_tour.py`` (writes the ``.ipynb``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"
MAGIC = "# MAGIC"
TITLE = "# DBTITLE"
KEY_OUTPUTS_FILE = "key_outputs.json"
ENV_PREFIX = "STRATA_NB_"
KERNEL_NAME = "strata-python"


class NotebookFormatError(ValueError):
    pass


# ---------------------------------------------------------------- Databricks source <-> cells


@dataclass
class Cell:
    cell_type: str  # "code" | "markdown"
    source: str
    title: str | None = None


def _magic_body(lines: list[str], where: str) -> list[str]:
    body = []
    for ln in lines:
        if ln == MAGIC:
            body.append("")
        elif ln.startswith(MAGIC + " "):
            body.append(ln[len(MAGIC) + 1:])
        else:
            raise NotebookFormatError(f"{where}: a %magic cell mixes '# MAGIC' and plain lines: {ln!r}")
    return body


def parse_source(text: str, where: str = "<notebook>") -> list[Cell]:
    """The cells of a Databricks source-format notebook."""
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != HEADER:
        raise NotebookFormatError(f"{where}: first line must be {HEADER!r}")
    chunks: list[list[str]] = [[]]
    for ln in lines[1:]:
        if ln.strip() == SEPARATOR:
            chunks.append([])
        else:
            chunks[-1].append(ln)
    cells = []
    for i, chunk in enumerate(chunks):
        while chunk and not chunk[0].strip():
            chunk.pop(0)
        while chunk and not chunk[-1].strip():
            chunk.pop()
        if not chunk:
            continue
        title = None
        if chunk[0].startswith(TITLE):
            title = chunk[0].split(",", 1)[1].strip() if "," in chunk[0] else None
            chunk = chunk[1:]
        if chunk and chunk[0].startswith(MAGIC):
            body = _magic_body(chunk, f"{where} cell {i + 1}")
            head, rest = body[0].strip(), body[1:]
            kind, _, first = head.partition(" ")
            if kind == "%md":
                cells.append(Cell("markdown", "\n".join(([first] if first else []) + rest).strip("\n"), title))
            elif kind == "%pip":
                cells.append(Cell("code", "\n".join([head, *rest]), title))
            elif kind == "%sh":
                cells.append(Cell("code", "\n".join(["%%sh", *([first] if first else []), *rest]), title))
            elif kind == "%python":
                cells.append(Cell("code", "\n".join(([first] if first else []) + rest), title))
            else:
                raise NotebookFormatError(
                    f"{where} cell {i + 1}: {kind} cells cannot run locally; keep notebooks to python, "
                    "%md, %pip and %sh cells")
        else:
            cells.append(Cell("code", "\n".join(chunk), title))
    return cells


def render_source(cells: list[Cell]) -> str:
    """Databricks source text for ``cells`` (the inverse of ``parse_source``)."""
    parts = []
    for c in cells:
        lines = [f"{TITLE} 1,{c.title}"] if c.title else []
        if c.cell_type == "markdown":
            md = c.source.split("\n")
            lines += [f"{MAGIC} %md"] + [f"{MAGIC} {ln}" if ln else MAGIC for ln in md]
        elif c.source.startswith("%%sh"):
            lines += [f"{MAGIC} %sh"] + [f"{MAGIC} {ln}" if ln else MAGIC for ln in c.source.split("\n")[1:]]
        elif c.source.startswith("%pip"):
            lines += [f"{MAGIC} {ln}" if ln else MAGIC for ln in c.source.split("\n")]
        else:
            lines += c.source.split("\n")
        parts.append("\n".join(lines))
    return HEADER + "\n" + ("\n\n" + SEPARATOR + "\n\n").join(parts) + "\n"


def to_notebook(path_or_text: str | Path, *, params: Mapping[str, Any] | None = None):
    """A Jupyter notebook (nbformat v4) from a Databricks source file or its text.

    ``params``: an ``injected-parameters`` cell (``name = value`` lines, as papermill writes) is put
    first, so ``notebook_params`` picks the values up from the notebook namespace.
    """
    import nbformat

    if isinstance(path_or_text, Path) or (isinstance(path_or_text, str) and "\n" not in path_or_text):
        where = str(path_or_text)
        text = Path(path_or_text).read_text(encoding="utf-8")
    else:
        where, text = "<notebook>", str(path_or_text)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["strata"] = {"source": where}
    if params:
        lines = ["# Parameters (injected)"] + [f"{k} = {v!r}" for k, v in params.items()]
        cell = nbformat.v4.new_code_cell("\n".join(lines))
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.append(cell)
    for c in parse_source(text, where):
        cell = (nbformat.v4.new_markdown_cell(c.source) if c.cell_type == "markdown"
                else nbformat.v4.new_code_cell(c.source))
        if c.title:
            cell.metadata["title"] = c.title
        nb.cells.append(cell)
    return nb


def to_source(nb) -> str:
    """Databricks source text of a Jupyter notebook (outputs and injected parameter cells dropped)."""
    cells = []
    for c in nb.cells:
        if "injected-parameters" in c.get("metadata", {}).get("tags", []):
            continue
        if c.cell_type not in ("code", "markdown"):
            continue
        cells.append(Cell(c.cell_type, c.source.strip("\n"), c.get("metadata", {}).get("title")))
    return render_source(cells)


# ---------------------------------------------------------------- parameters


def on_databricks() -> bool:
    return bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))


def _dbutils(namespace: Mapping[str, Any]) -> Any:
    if "dbutils" in namespace:
        return namespace["dbutils"]
    if not on_databricks():
        return None
    try:  # Databricks Runtime 13+: the notebook's dbutils, importable
        from databricks.sdk.runtime import dbutils  # type: ignore[import-not-found]

        return dbutils
    except Exception:  # noqa: BLE001 - no dbutils: fall back to the local sources
        return None


def _cast(value: Any, default: Any) -> Any:
    if value is None or default is None or isinstance(value, type(default)) and not isinstance(value, bool):
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("1", "true", "yes", "y", "on")
    if isinstance(default, (int, float)) and isinstance(value, str) and not value.strip():
        return default
    return type(default)(value)


class Params(dict):
    """The resolved parameters: a dict with attribute access and where each value came from."""

    origin: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def notebook_params(namespace: Mapping[str, Any] | None = None, **defaults: Any) -> Params:
    """Resolve each declared parameter: Databricks widget > notebook variable (papermill) > env > default."""
    if namespace is None:
        namespace = sys._getframe(1).f_globals  # the calling notebook's globals
    dbu = _dbutils(namespace)
    out, origin = Params(), {}
    for name, default in defaults.items():
        value, src = default, "default"
        if dbu is not None:
            try:
                dbu.widgets.text(name, "" if default is None else str(default))
            except Exception:  # noqa: BLE001 - the widget already exists (re-run)
                pass
            value, src = dbu.widgets.get(name), "widget"
        elif name in namespace and not name.startswith("_"):
            value, src = namespace[name], "notebook"
        elif ENV_PREFIX + name.upper() in os.environ:
            value, src = os.environ[ENV_PREFIX + name.upper()], "env"
        out[name] = _cast(value, default)
        origin[name] = src
    out.origin = origin
    return out


# ---------------------------------------------------------------- key outputs


def key_outputs(out_dir: str | Path, *, files: Mapping[str, str | Path] | None = None,
                values: Mapping[str, Any] | None = None) -> dict:
    """Check and record what a notebook produced: every file exists and is non-empty, every value is set.

    Writes ``OUT_DIR/key_outputs.json`` (``{"files": {name: path}, "values": {...}}``) and returns it;
    raises ``AssertionError`` naming what is missing, so a headless run fails on a missing output.
    """
    out_dir = Path(out_dir)
    missing = []
    rec_files = {}
    for name, p in (files or {}).items():
        p = Path(p)
        if not p.is_file() or p.stat().st_size == 0:
            missing.append(f"file {name}: {p}")
        rec_files[name] = str(p)
    rec_values = {}
    for name, v in (values or {}).items():
        if v is None:
            missing.append(f"value {name}")
        rec_values[name] = v
    if missing:
        raise AssertionError("key outputs missing: " + "; ".join(missing))
    rec = {"files": rec_files, "values": rec_values}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / KEY_OUTPUTS_FILE).write_text(json.dumps(rec, indent=2, default=str) + "\n")
    return rec


# ---------------------------------------------------------------- execution (local)


def _kernel_manager(kdir: Path):
    """A kernel manager whose kernel is *this* interpreter (the project venv), whatever kernelspecs the
    user has installed: a private kernelspec in a temp dir pointing at ``sys.executable``."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    (kdir / KERNEL_NAME).mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"strata ({sys.executable})", "language": "python"}
    (kdir / KERNEL_NAME / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(kdir)])
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
    return km


def execute(path: str | Path, params: Mapping[str, Any] | None = None, *, out: str | Path | None = None,
            cwd: str | Path | None = None, timeout: int = 900, env: Mapping[str, str] | None = None):
    """Convert a Databricks source notebook and run it headless on this interpreter; returns the executed
    notebook (written to ``out`` as .ipynb when given, also when a cell fails). Raises nbclient's
    ``CellExecutionError`` on the first failing cell."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = to_notebook(path, params=params)
    kdir = Path(tempfile.mkdtemp(prefix="strata-kernel-"))
    km = _kernel_manager(kdir)
    kenv = dict(os.environ)
    kenv.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    kenv.update(env or {})
    client = NotebookClient(nb, km=km, timeout=timeout, allow_errors=False,
                            resources={"metadata": {"path": str(Path(cwd or path.parent).resolve())}})
    try:
        client.execute(env=kenv)
    finally:
        shutil.rmtree(kdir, ignore_errors=True)
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(out))
    return nb


def _parse_param(s: str) -> tuple[str, Any]:
    if "=" not in s:
        raise SystemExit(f"-p expects NAME=VALUE, got {s!r}")
    k, v = s.split("=", 1)
    try:
        return k, json.loads(v)
    except ValueError:
        return k, v


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m strata.notebook", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="Databricks source .py -> .ipynb (or back, with --to-source)")
    c.add_argument("path")
    c.add_argument("--out")
    c.add_argument("--to-source", action="store_true", help="read an .ipynb and write Databricks source")
    r = sub.add_parser("run", help="execute a notebook headless on this interpreter")
    r.add_argument("path")
    r.add_argument("--out-dir", required=True, help="the notebook's out_dir parameter; the executed "
                   ".ipynb is written here too")
    r.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE (JSON or a string)")
    r.add_argument("--timeout", type=int, default=1800)
    a = ap.parse_args(argv)
    import nbformat

    if a.cmd == "convert":
        p = Path(a.path)
        if a.to_source:
            text = to_source(nbformat.read(str(p), as_version=4))
            Path(a.out or p.with_suffix(".py")).write_text(text, encoding="utf-8")
        else:
            nbformat.write(to_notebook(p), str(a.out or p.with_suffix(".ipynb")))
        return 0
    params = dict(_parse_param(s) for s in a.param)
    params["out_dir"] = str(Path(a.out_dir).resolve())
    out = Path(a.out_dir) / (Path(a.path).stem + ".ipynb")
    execute(a.path, params, out=out, timeout=a.timeout)
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
