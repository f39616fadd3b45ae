"""Issue 11.4 - secrets: API keys come from the environment (or a secret scope mapped into it) only, and never
end up in config files, logs, manifests, reports or tables.

A fake key is planted in the environment and named as the openai judge's ``api_key_env``; real judging runs
(the library job and the ``strata judge score`` CLI) go against a local OpenAI-compatible HTTP server that,
for some rows, echoes the Authorization header back (in the HTTP reason phrase and body) or redirects to
another host. Every file the runs write (Delta parquet and _delta_log, manifest.json, summary), decoded
table cells, captured log records and stdout/stderr are then searched for the key: it must not appear,
while it *is* sent in the Authorization header to the configured endpoint (so the test can fail) and a
canary in the data *is* found by the same search (so the search can see table contents).

Faults found and fixed: a redirect from the endpoint made urllib re-send the key to the redirect target;
the retry-exhausted error text carried the server's HTTP reason phrase (server-chosen text, which could
echo the key) into the ``judgments.error`` column; a config error echoed the rejected value (``judge.api_key:
Extra inputs are not permitted (got 'sk-...')``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from strata.config import ConfigError, StrataConfig, load_config
from strata.judge.backends import load_judge
from strata.judge.config import JudgeConfig
from strata.judge.protocol import BACKEND_ERROR, OK, JudgeInput
from strata.ops import submit as ops
from strata.pipeline.manifest import Manifest

KEY_ENV = "STRATA_TEST_FAKE_KEY"
KEY = "sk-strata-planted-0123456789"
CANARY = "canary-query-7f3a"


# -- a fake OpenAI-compatible endpoint, and a "thief" host a redirect points at -------------------------------

class _Recorder(BaseHTTPRequestHandler):
    requests: list  # set per server class

    def log_message(self, *a):  # quiet
        pass

    def _record(self, body):
        self.requests.append({"method": self.command, "path": self.path,
                              "auth": self.headers.get("Authorization"), "body": body})


def _endpoint_handler(redirect_to: str):
    class Endpoint(_Recorder):
        requests: list = []

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._record(body)
            user = body["messages"][1]["content"]
            auth = self.headers.get("Authorization") or ""
            if "ECHO503" in user or "ECHO400" in user:  # a server that echoes the credential back
                data = json.dumps({"error": {"message": f"bad credential {auth}"}}).encode()
                self.send_response(503 if "ECHO503" in user else 400, f"Rejected {auth}")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if "REDIRECT" in user:
                self.send_response(302)
                self.send_header("Location", redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            top = [{"token": "2", "logprob": math.log(0.7)}, {"token": "1", "logprob": math.log(0.2)},
                   {"token": "0", "logprob": math.log(0.1)}]
            resp = {"choices": [{"message": {"content": "2"}, "logprobs": {"content": [
                {"token": "2", "logprob": math.log(0.7), "top_logprobs": top}]}}]}
            data = json.dumps(resp).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Endpoint


def _thief_handler():
    class Thief(_Recorder):
        requests: list = []

        def _any(self):
            n = int(self.headers.get("Content-Length") or 0)
            self._record(self.rfile.read(n).decode("utf-8", "replace") if n else "")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = _any  # noqa: N815

    return Thief


def _serve(handler):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture()
def servers():
    thief = _serve(_thief_handler())
    endpoint = _serve(_endpoint_handler(f"http://127.0.0.1:{thief.server_port}/steal"))
    yield SimpleServers(endpoint, thief)
    endpoint.shutdown()
    thief.shutdown()


class SimpleServers:
    def __init__(self, endpoint, thief):
        self.endpoint, self.thief = endpoint, thief
        self.url = f"http://127.0.0.1:{endpoint.server_port}/v1"

    @property
    def seen(self) -> list:
        return self.endpoint.RequestHandlerClass.requests

    @property
    def stolen(self) -> list:
        return self.thief.RequestHandlerClass.requests


@pytest.fixture()
def planted_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


@pytest.fixture()
def restore_logging():
    """The CLI reconfigures the root logger (basicConfig(force=True)); put pytest's handlers back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# -- searching everything a run left behind ----------------------------------------------------------------

def _squash(text: str) -> str:
    return "".join(text.split())  # a console may wrap a long line in the middle of the key


def find_in_files(root: Path, needle: str) -> list[str]:
    """Files under ``root`` whose bytes contain ``needle``, and parquet cells (decoded, so compression and
    dictionary encoding cannot hide it) that contain it."""
    hits = []
    for f in sorted(root.rglob("*")):
        if not f.is_file():
            continue
        data = f.read_bytes()
        if needle.encode() in data or needle.encode("utf-16-le") in data:
            hits.append(str(f))
        if f.suffix == ".parquet":
            table = pq.read_table(f)
            for name in table.column_names:
                if any(needle in str(v) for v in table.column(name).to_pylist()):
                    hits.append(f"{f}::{name}")
        elif f.suffix in (".json", ".md", ".yaml", ".txt", ".log", ".html", ".crc") and needle in _squash(
                data.decode("utf-8", "replace")):
            hits.append(f"{f} (wrapped)")
    return hits


def _candidates() -> pd.DataFrame:
    rows = [(f"{CANARY} drill", "p1", "DEWALT 20V cordless drill"), ("drill", "p2", "Garden hose 50 ft"),
            ("drill", "p3", "ECHO503 drill bit set"), ("drill", "p4", "ECHO400 drill case"),
            ("drill", "p5", "REDIRECT drill charger"), ("", "p6", "empty query row")]
    return pd.DataFrame([{"source": "toy", "query": q, "product_id": p, "title": t} for q, p, t in rows])


def _check_judgments(lh, judge_id):
    j = lh.read_arrow("judgments").to_pandas().set_index("product_id")
    assert (j["judge_id"] == judge_id).all()
    assert list(j.loc[["p1", "p2"], "status"]) == [OK, OK] and list(j.loc[["p1", "p2"], "grade"]) == [2, 2]
    assert list(j.loc[["p3", "p4", "p5"], "status"]) == [BACKEND_ERROR] * 3
    assert "HTTP 503" in j.loc["p3", "error"] and "HTTP 400" in j.loc["p4", "error"]
    assert "redirects are not followed" in j.loc["p5", "error"]
    assert j.loc["p6", "status"] == "error:empty_query"


def _assert_key_sent_only_to_the_endpoint(servers):
    assert servers.seen, "the fake endpoint got no request"
    assert all(r["auth"] == f"Bearer {KEY}" for r in servers.seen)  # the key IS sent, to the endpoint
    assert servers.stolen == []  # and to nobody else


def test_judging_run_never_writes_or_logs_the_key(engines, servers, planted_key, tmp_path, caplog, capfd):
    from strata.judge.job import read_candidates, run_judging
    from strata.tables import Lakehouse

    caplog.set_level(logging.DEBUG)
    run_dir = tmp_path / "run"
    lh = Lakehouse(run_dir / "lakehouse")
    # the fake endpoint fails some pairs on purpose: this test is about the key, not the error share
    cfg = JudgeConfig(backend="openai", model="fake-llm", base_url=servers.url, api_key_env=KEY_ENV,
                      max_retries=1, timeout_s=5, batch_size=4, chunk_rows=2, max_error_share=1.0)
    summary = run_judging(engines, lh, read_candidates(_candidates()), cfg, "secrets-run", use_ray=False)
    assert summary["judged"] == 6 and summary["errors"] == 4
    (run_dir / "judge_summary.json").write_text(json.dumps(summary, indent=2))

    # The run manifest, with the same judge settings in the config it records.
    config = load_config("demo", overrides=[
        "judge.backend=openai", "judge.model=fake-llm", f"judge.base_url={servers.url}",
        f"judge.api_key_env={KEY_ENV}", f"lakehouse.root={lh.root}"])
    m = Manifest(run_id="secrets-run", config=config)
    m.models["judge"] = summary["judge_id"]
    m.table_versions["after_judge"] = {"judgments": lh.version("judgments")}
    m.extra["judge"] = summary
    m.write(run_dir / "manifest.json")

    _assert_key_sent_only_to_the_endpoint(servers)
    echoed = [r for r in servers.seen if "ECHO" in r["body"]["messages"][1]["content"]]
    assert len(echoed) == 3  # ECHO503 twice (one retry), ECHO400 once: the key was echoed back each time

    assert find_in_files(run_dir, KEY) == []
    out, err = capfd.readouterr()
    for where, text in (("log records", caplog.text), ("stdout", out), ("stderr", err)):
        assert KEY not in _squash(text), f"the key leaked into {where}"
    _check_judgments(lh, summary["judge_id"])
    # Positive controls: the search sees table contents and the manifest records the judge config.
    assert any("judgments" in h for h in find_in_files(run_dir, CANARY))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["judge"]["api_key_env"] == KEY_ENV
    assert KEY_ENV in (run_dir / "manifest.json").read_text()
    assert (run_dir / "lakehouse" / "judgments" / "_delta_log").is_dir()


def test_judge_score_cli_never_prints_or_writes_the_key(servers, monkeypatch, tmp_path, capfd, caplog,
                                                        restore_logging):
    from strata.commands.judge import register

    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the CLI's judge reads the default api_key_env
    cands = tmp_path / "cands.parquet"
    _candidates().to_parquet(cands)
    lh_root = tmp_path / "cli-lakehouse"
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    r = CliRunner().invoke(app, ["judge", "score", "--lakehouse", str(lh_root), "--candidates", str(cands),
                                 "--backend", "openai", "--model", "fake-llm", "--base-url", servers.url,
                                 "--no-ray", "--batch-size", "4", "--chunk-rows", "2", "--run-id", "cli-run",
                                 "--max-error-share", "1"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert summary["judged"] == 6 and summary["errors"] == 4
    from strata.tables import Lakehouse

    assert find_in_files(lh_root, KEY) == []
    out, err = capfd.readouterr()
    for where, text in (("CLI output", r.output), ("log records", caplog.text), ("stdout", out), ("stderr", err)):
        assert KEY not in _squash(text), f"the key leaked into {where}"
    _assert_key_sent_only_to_the_endpoint(servers)
    _check_judgments(Lakehouse(lh_root), summary["judge_id"])
    assert any("judgments" in h for h in find_in_files(lh_root, CANARY))


def test_a_redirect_would_carry_the_key_away_without_the_guard(servers, planted_key):
    """The fault behind the guard: plain urllib re-sends Authorization to wherever a redirect points."""
    req = urllib.request.Request(servers.url + "/chat/completions", method="POST",
                                 data=json.dumps({"messages": [{}, {"content": "REDIRECT"}]}).encode(),
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()
    assert [r["auth"] for r in servers.stolen] == [f"Bearer {KEY}"]

    servers.stolen.clear()
    judge = load_judge(JudgeConfig(backend="openai", model="m", base_url=servers.url, api_key_env=KEY_ENV,
                                   max_retries=0))
    out = judge.judge([JudgeInput("drill", "REDIRECT charger"), JudgeInput("drill", "drill")])
    assert out[0].status == BACKEND_ERROR and "302" in out[0].error and out[1].status == OK
    assert servers.stolen == []


def test_judge_object_does_not_expose_the_key_in_its_repr(planted_key, servers):
    judge = load_judge(JudgeConfig(backend="openai", model="m", base_url=servers.url, api_key_env=KEY_ENV))
    assert KEY not in repr(judge) and KEY not in repr(judge.cfg) and KEY not in str(judge.cfg.model_dump())


# -- config: keys are refused, and the refusal never shows them --------------------------------------------

@pytest.mark.parametrize("override,where", [
    (f"judge.api_key={KEY}", "judge.api_key"),
    (f"judge.openai_api_key={KEY}", "judge.openai_api_key"),
    (f"judge.api_key_env={KEY}", "judge.api_key_env"),  # the key pasted where its variable's NAME belongs
    (f"judge.base_url=https://user:{KEY}@llm.example.com/v1", "judge.base_url"),
    (f"judge.base_url=https://llm.example.com/v1?api_key={KEY}", "judge.base_url"),
    (f"engine.spark_remote=sc://spark.example.com:15002/;token={KEY}", "engine.spark_remote"),
    (f"train.mlflow_uri=https://ci:{KEY}@mlflow.example.com", "train.mlflow_uri"),
    (f"refresh.registry_uri=postgresql://strata:{KEY}@db.example.com/mlflow", "refresh.registry_uri"),
    (f"train.hf_token={KEY}", "train.hf_token"),
    (f"engine.password={KEY}", "engine.password"),
])
def test_config_refuses_secrets_without_showing_them(override, where):
    with pytest.raises(ConfigError) as e:
        load_config("demo", overrides=[override])
    msg = str(e.value)
    assert where in msg and KEY not in msg
    assert "environment" in msg and "not shown" in msg


def test_config_file_with_a_key_is_refused_with_a_pointer_to_api_key_env(tmp_path):
    f = tmp_path / "strata.yaml"
    f.write_text(f"judge:\n  backend: openai\n  base_url: http://127.0.0.1:8000/v1\n  api_key: {KEY}\n")
    with pytest.raises(ConfigError) as e:
        load_config("demo", f)
    msg = str(e.value)
    assert KEY not in msg and "judge.api_key" in msg and "api_key_env" in msg and "OPENAI_API_KEY" in msg
    # The supported way: the file names the variable, the value stays in the environment.
    f.write_text(f"judge:\n  backend: openai\n  base_url: http://127.0.0.1:8000/v1\n  api_key_env: {KEY_ENV}\n")
    assert load_config("demo", f).judge.api_key_env == KEY_ENV


def test_programmatic_configs_refuse_secrets_too():
    from pydantic import ValidationError

    for kwargs in ({"api_key": KEY}, {"api_key_env": KEY}, {"base_url": f"https://u:{KEY}@h/v1"}):
        with pytest.raises(ValidationError) as e:
            JudgeConfig(backend="openai", **kwargs)
        assert KEY not in str(e.value)
    with pytest.raises(ValidationError) as e:
        StrataConfig.model_validate({"judge": {"api_key": KEY}})
    assert KEY not in str(e.value)
    with pytest.raises(ValidationError) as e:
        StrataConfig.model_validate({"engine": {"spark_remote": f"sc://h:1/;token={KEY}"}})
    assert KEY not in str(e.value)


def test_no_config_field_looks_like_a_secret():
    """No false positives: every field of every profile passes the secret checks (and names a variable)."""
    from strata.secret_policy import find_secret_fields, find_url_credentials

    for profile in ("demo", "local", "cluster"):
        doc = load_config(profile).model_dump(mode="json")
        assert find_secret_fields(doc) == [] and find_url_credentials(doc) == []
    ok = load_config("demo", overrides=["engine.spark=connect", "engine.spark_remote=sc://h:15002",
                                        "judge.base_url=http://vllm:8000/v1", "train.mlflow_uri=http://mlflow:5000",
                                        "refresh.registry_uri=sqlite:////tmp/registry.db"])
    assert ok.engine.spark_remote == "sc://h:15002"


def test_strata_config_cli_refuses_a_key_and_prints_only_the_variable_name(planted_key, restore_logging):
    from strata.cli import app

    r = CliRunner().invoke(app, ["config", "--set", f"judge.api_key={KEY}"])
    assert r.exit_code == 2 and KEY not in _squash(r.output) and "api_key_env" in _squash(r.output)
    r = CliRunner().invoke(app, ["config", "--set", f"judge.api_key_env={KEY_ENV}"])
    assert r.exit_code == 0 and f"api_key_env: {KEY_ENV}" in r.stdout and KEY not in r.output


# -- strata submit: no literal secret in anything stored with a job ----------------------------------------

def test_submit_refuses_literal_secrets_in_job_arguments_and_parameters(planted_key):
    for call in (
        lambda: ops.ray_submission("mine", ["--set", f"judge.api_key={KEY}"]),
        lambda: ops.ray_submission("mine", ["--base-url", f"https://u:{KEY}@h/v1"]),
        lambda: ops.databricks_command("mine", params={"openai_api_key": KEY}),
        lambda: ops.spark_submit_command("features", conf=[f"spark.hadoop.fs.s3a.secret.key={KEY}"]),
        lambda: ops.spark_submit_command("features", ["--set", f"train.mlflow_uri=https://u:{KEY}@m"]),
    ):
        with pytest.raises(ops.SubmitError) as e:
            call()
        assert KEY not in str(e.value) and "not shown" in str(e.value)
    # References are fine: a secret scope, an env reference, a variable's name.
    assert "--params" in ops.databricks_command("mine", params={"openai_api_key": "{{secrets/strata/openai}}"})
    sub = ops.ray_submission("mine", ["--set", f"judge.api_key_env={KEY_ENV}"], env_names=[KEY_ENV], pip=False)
    payload = json.dumps({"entrypoint": sub.entrypoint, "runtime_env": sub.runtime_env, "metadata": sub.metadata})
    assert KEY not in payload and "${" + KEY_ENV + "}" in payload


def test_submit_cli_refuses_before_contacting_the_cluster(planted_key, monkeypatch, restore_logging):
    from strata.commands import submit as submit_cmd

    contacted = []
    monkeypatch.setattr(ops, "submit_ray", lambda address, sub, **kw: contacted.append(address) or ("j", "SUBMITTED"))
    app = typer.Typer()

    @app.callback()
    def _cb() -> None:
        pass

    submit_cmd.register(app)
    r = CliRunner().invoke(app, ["submit", "mine", "--target", "ray://head", "--", "--set",
                                 f"judge.api_key={KEY}"])
    assert r.exit_code == 2 and contacted == [] and KEY not in _squash(r.output)
    r = CliRunner().invoke(app, ["submit", "mine", "--target", "ray://head", "--", "--set",
                                 f"judge.api_key_env={KEY_ENV}"])
    assert r.exit_code == 0 and contacted == ["http://head:8265"]  # the control: a name goes through


def test_manifest_blanks_secret_shaped_values_that_reach_it(tmp_path):
    """Last guard: a stage summary carrying a key-like field or a URL with credentials is blanked on write."""
    m = Manifest(run_id="r", config=load_config("demo"))
    m.extra["stage"] = {"hf_token": KEY, "endpoint": f"https://u:{KEY}@h/v1", "rows": 3,
                        "api_key_env": KEY_ENV}
    text = m.write(tmp_path / "manifest.json").read_text()
    doc = json.loads(text)
    assert KEY not in text and doc["stage"]["rows"] == 3 and doc["stage"]["api_key_env"] == KEY_ENV
    assert doc["stage"]["hf_token"] == "<not shown>" and doc["config"]["profile"] == "demo"
