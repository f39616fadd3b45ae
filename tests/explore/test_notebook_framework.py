"""strata.notebook: Databricks source <-> Jupyter, the parameter helper, key outputs, papermill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strata.notebook import (
    KEY_OUTPUTS_FILE,
    NotebookFormatError,
    key_outputs,
    notebook_params,
    parse_source,
    render_source,
    to_notebook,
    to_source,
)

SRC = """# Databricks notebook source
# MAGIC %md
# MAGIC # Title
# MAGIC
# MAGIC Some *text*.

# COMMAND ----------

# DBTITLE 1,Parameters
from strata.notebook import notebook_params
P = notebook_params(top_n=3, name="x")

# COMMAND ----------

# MAGIC %sh
# MAGIC echo hi

# COMMAND ----------

print(P.top_n, P.origin["top_n"], P.name)
"""


def test_parse_source_cells():
    cells = parse_source(SRC)
    assert [c.cell_type for c in cells] == ["markdown", "code", "code", "code"]
    assert cells[0].source == "# Title\n\nSome *text*."
    assert cells[1].title == "Parameters" and cells[1].source.startswith("from strata.notebook")
    assert cells[2].source == "%%sh\necho hi"


def test_round_trip_is_stable():
    again = render_source(parse_source(SRC))
    assert parse_source(again) == parse_source(SRC)
    assert render_source(parse_source(again)) == again


def test_to_notebook_and_back(tmp_path):
    p = tmp_path / "n.py"
    p.write_text(SRC)
    nb = to_notebook(p, params={"top_n": 5})
    assert nb.cells[0].metadata["tags"] == ["injected-parameters"] and "top_n = 5" in nb.cells[0].source
    assert nb.cells[1].cell_type == "markdown"
    assert parse_source(to_source(nb)) == parse_source(SRC)  # the injected cell is dropped


def test_bad_sources_are_rejected():
    with pytest.raises(NotebookFormatError, match="first line"):
        parse_source("print(1)\n")
    with pytest.raises(NotebookFormatError, match="%sql"):
        parse_source("# Databricks notebook source\n# MAGIC %sql\n# MAGIC select 1\n")


def test_params_precedence_and_casting(monkeypatch):
    ns = {"b": "from-papermill"}
    monkeypatch.setenv("STRATA_NB_C", "7")
    monkeypatch.setenv("STRATA_NB_D", "false")
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    p = notebook_params(ns, a="default", b="", c=1, d=True, e=0.5)
    assert p == {"a": "default", "b": "from-papermill", "c": 7, "d": False, "e": 0.5}
    assert p.origin == {"a": "default", "b": "notebook", "c": "env", "d": "env", "e": "default"}
    assert p.c == 7


def test_params_read_the_callers_globals():
    top_n = 9  # noqa: F841 - locals are not parameters; only the caller's module globals are
    assert notebook_params(top_n=1).top_n == 1
    g = {"top_n": 4, "notebook_params": notebook_params}
    exec("P = notebook_params(top_n=1)", g)
    assert g["P"].top_n == 4


class _Widgets:
    def __init__(self, preset):
        self.values = dict(preset)
        self.created = {}

    def text(self, name, default):
        self.created[name] = default
        self.values.setdefault(name, default)

    def get(self, name):
        return self.values[name]


def test_params_use_databricks_widgets_first():
    class DBU:
        widgets = _Widgets({"top_n": "12"})

    p = notebook_params({"dbutils": DBU, "top_n": 3, "name": "nb"}, top_n=1, name="x")
    assert p == {"top_n": 12, "name": "x"} and p.origin == {"top_n": "widget", "name": "widget"}
    assert DBU.widgets.created == {"top_n": "1", "name": "x"}


def test_key_outputs_records_and_fails_on_missing(tmp_path):
    f = tmp_path / "a.png"
    f.write_bytes(b"x")
    rec = key_outputs(tmp_path, files={"a": f}, values={"n": 3})
    assert json.loads((tmp_path / KEY_OUTPUTS_FILE).read_text()) == rec
    with pytest.raises(AssertionError, match="file b"):
        key_outputs(tmp_path, files={"b": tmp_path / "missing.png"})
    with pytest.raises(AssertionError, match="value v"):
        key_outputs(tmp_path, values={"v": None})


def test_papermill_parameters_reach_notebook_params(tmp_path):
    """papermill injects its parameters cell at the top (no cell is tagged 'parameters'); the helper reads
    them from the notebook namespace."""
    import nbformat
    import papermill as pm

    from strata.notebook import _kernel_manager

    src = tmp_path / "n.py"
    src.write_text(SRC.replace("# MAGIC %sh\n# MAGIC echo hi", "import sys\nprint(sys.executable)"))
    ipynb = tmp_path / "n.ipynb"
    nbformat.write(to_notebook(src), str(ipynb))
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(ipynb), str(out), parameters={"top_n": 8}, km=_kernel_manager(tmp_path / "k"),
                        progress_bar=False, cwd=str(tmp_path))
    nb = nbformat.read(str(out), as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "8 notebook x" in text
    import sys

    assert sys.executable in text  # the kernel is this interpreter


def test_cli_convert(tmp_path):
    from strata.notebook import main

    src = tmp_path / "n.py"
    src.write_text(SRC)
    assert main(["convert", str(src)]) == 0
    assert (tmp_path / "n.ipynb").is_file()
    back = tmp_path / "back.py"
    assert main(["convert", str(tmp_path / "n.ipynb"), "--to-source", "--out", str(back)]) == 0
    assert parse_source(back.read_text()) == parse_source(SRC)


def test_repo_notebooks_convert():
    for p in sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.py")):
        nb = to_notebook(p)
        assert nb.cells and any(c.cell_type == "markdown" for c in nb.cells), p
