"""The executor: outputs persisted between processes, fingerprint skipping, a step asked for alone."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from strata.config import load_config
from strata.pipeline.execute import Context, State, execute
from strata.pipeline.graph import GraphError, Step
from strata.pipeline.manifest import Manifest

CALLS: list[str] = []


def first(ctx):
    CALLS.append("first")
    return {"value": ctx.config.seed}


def second(ctx):
    CALLS.append("second")
    return {"double": 2 * ctx.output("first", "value")}


A = Step("first", f"{__name__}:first", "a", sections=("seed",))
B = Step("second", f"{__name__}:second", "b", uses=("first",))


def _ctx(tmp_path, seed=13, start=None):
    cfg = load_config("demo", overrides=[f"seed={seed}"])
    return Context(cfg, None, None, tmp_path, Manifest("r1", cfg), State(tmp_path / "state.json"),
                   start_version=start)


def test_outputs_reach_a_later_step_in_another_process(tmp_path):
    CALLS.clear()
    done = execute(_ctx(tmp_path), [A])
    assert done["first"]["ran"] and done["first"]["value"] == 13
    # a new process (a scheduler's next task) reads the first step's outputs from state.json
    done = execute(_ctx(tmp_path), [B])
    assert done["second"]["double"] == 26 and CALLS == ["first", "second"]
    assert json.loads((tmp_path / "state.json").read_text())["steps"]["second"]["outputs"] == {"double": 26}


def test_a_step_without_its_upstream_outputs_is_a_clear_error(tmp_path):
    with pytest.raises(GraphError, match="needs the outputs of 'first'"):
        execute(_ctx(tmp_path), [B])


def test_unchanged_inputs_are_skipped_and_a_changed_section_reruns(tmp_path):
    CALLS.clear()
    execute(_ctx(tmp_path), [A, B], skip_unchanged=True)
    again = execute(_ctx(tmp_path), [A, B], skip_unchanged=True)
    assert not again["first"]["ran"] and not again["second"]["ran"] and again["second"]["double"] == 26
    changed = execute(_ctx(tmp_path, seed=5), [A, B], skip_unchanged=True)
    assert changed["first"]["ran"] and changed["second"]["ran"] and changed["second"]["double"] == 10
    assert CALLS == ["first", "second", "first", "second"]


def test_the_start_model_counts_only_for_steps_that_start_from_it(tmp_path):
    CALLS.clear()
    starts = replace(A, start=True)
    execute(_ctx(tmp_path, start="1"), [starts, B], skip_unchanged=True)
    again = execute(_ctx(tmp_path, start="2"), [starts, B], skip_unchanged=True)  # a new champion
    assert again["first"]["ran"] and not again["second"]["ran"]  # same outputs: the second is unchanged


def test_timings_go_into_the_manifest(tmp_path):
    ctx = _ctx(tmp_path)
    execute(ctx, [A])
    assert "first" in ctx.manifest.timings


def test_a_table_the_step_writes_is_not_one_of_its_inputs(tmp_path, monkeypatch):
    """mine reads and writes judgments (the judge's cache): its own writes must not make it run again."""
    import strata.pipeline.execute as ex

    content = {"labels": "1", "judgments": "1"}
    monkeypatch.setattr(ex, "table_fingerprint", lambda spark, lh, name: content[name])

    class _Eng:
        spark = None

    mine = Step("first", f"{__name__}:first", "a", reads=("labels", "judgments"), writes=("judgments",))
    CALLS.clear()
    ctx = _ctx(tmp_path)
    ctx.engines = _Eng()
    execute(ctx, [mine], skip_unchanged=True)
    content["judgments"] = "2"  # what the step itself wrote
    assert not execute(ctx, [mine], skip_unchanged=True)["first"]["ran"]
    content["labels"] = "2"  # a real input changed
    assert execute(ctx, [mine], skip_unchanged=True)["first"]["ran"]
    assert CALLS == ["first", "first"]


def save_model(ctx):
    CALLS.append("save_model")
    (ctx.run_dir / "model").mkdir(exist_ok=True)
    return {"model": str(ctx.run_dir / "model"), "files": [str(ctx.run_dir / "model" / "config.json")],
            "elsewhere": "/opt/models/base"}


def use_model(ctx):
    CALLS.append("use_model")
    return {"saw": ctx.output("save", "model")}


def test_a_moved_folder_keeps_its_outputs_and_its_skips(tmp_path):
    """A run folder copied elsewhere (a mirror's local copy on another node) names its own files there, and a
    step whose inputs did not change is still skipped: fingerprints see folder-relative paths."""
    import shutil

    CALLS.clear()
    save = Step("save", f"{__name__}:save_model", "a")
    use = Step("use", f"{__name__}:use_model", "b", uses=("save",))
    one, two = tmp_path / "node-a" / "run", tmp_path / "node-b" / "run"
    one.mkdir(parents=True)
    execute(_ctx(one), [save, use], skip_unchanged=True)
    stored = json.loads((one / "state.json").read_text())["steps"]["save"]["outputs"]
    assert stored == {"model": "${root}/model", "files": ["${root}/model/config.json"],
                      "elsewhere": "/opt/models/base"}
    two.parent.mkdir()
    shutil.copytree(one, two)
    ctx = _ctx(two)
    assert ctx.state.outputs("save")["model"] == str(two / "model")
    again = execute(ctx, [save, use], skip_unchanged=True)
    assert not again["save"]["ran"] and not again["use"]["ran"] and again["use"]["saw"] == str(two / "model")
    assert CALLS == ["save_model", "use_model"]
