"""The ``openai`` judge: any OpenAI-compatible chat completions endpoint (a vLLM server, a hosted model).

Same prompt as the other generative judges; the grade comes from ``logprobs``/``top_logprobs`` of the one
generated token (``max_tokens=1``), never from the text. Requests go out through a bounded thread pool
(``max_concurrency``) with a client-side rate limit, a per-request timeout, and retries with exponential
back-off on timeouts, connection errors, 429 and 5xx. The API key is read from the environment variable
named by ``api_key_env`` only (on Databricks, map a secret scope into it: ``{{secrets/scope/key}}``); it is
never taken from a config file, logged, or written into a judgment: a row's error text names the HTTP status
or the local exception, never text the server sent back, and any error text is scrubbed of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from strata.judge.prompt import guideline_id, messages, probs_from_logprobs
from strata.judge.protocol import JudgeInput, JudgeOutput, PreparedInput, judge_scored

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}

log = logging.getLogger(__name__)


class _RateLimiter:
    def __init__(self, per_second: float | None):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.lock = threading.Lock()
        self.next_at = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next_at)
            self.next_at = at + self.interval
        if at > now:
            time.sleep(at - now)


def request_body(model: str, p: PreparedInput, guideline_version: str) -> dict[str, Any]:
    return {"model": model, "messages": messages(p, guideline_version), "max_tokens": 1, "temperature": 0,
            "logprobs": True, "top_logprobs": 20}


def probs_from_response(resp: dict[str, Any]) -> np.ndarray:
    """P(0..2) from a chat completion's first-token top_logprobs (raises if absent)."""
    content = resp["choices"][0]["logprobs"]["content"]
    first = content[0]
    top = {t["token"]: t["logprob"] for t in first.get("top_logprobs") or []}
    top.setdefault(first["token"], first["logprob"])
    probs = probs_from_logprobs(top)
    if probs is None:
        raise ValueError("no grade token among the first token's top_logprobs")
    return probs


def identity(model: str, guideline_version: str) -> tuple[str, str]:
    """(judge_id, version); the job's resume looks pairs up by this id, so it is computed in one place."""
    version = f"{guideline_id(guideline_version)}+{model}"
    return f"openai-{model.split('/')[-1]}@{hashlib.sha1(version.encode()).hexdigest()[:12]}", version


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: urllib would re-send the Authorization header to whatever host the
    ``Location`` names. An API endpoint has no reason to redirect a POST; the 3xx becomes a row error."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, D102
        return None


def _describe(e: Exception | None) -> str:
    """An endpoint failure without text the server chose: an HTTP reason phrase is the server's to write."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code}"
    if isinstance(e, urllib.error.URLError):  # a local socket/DNS/TLS failure
        return f"URLError: {e.reason}"
    return f"{type(e).__name__}: {e}" if e is not None else "unknown error"


class OpenAIJudge:
    def __init__(self, cfg: Any):
        if not cfg.base_url:
            raise ValueError("openai judge: base_url is required (e.g. http://host:8000/v1)")
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self._api_key = os.environ.get(cfg.api_key_env) or None
        if self._api_key is None:
            log.info("openai judge: $%s is not set; requests carry no Authorization header", cfg.api_key_env)
        self.judge_id, self.version = identity(cfg.model, cfg.guideline)
        self.limiter = _RateLimiter(cfg.requests_per_second)
        self._opener = urllib.request.build_opener(_NoRedirect)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        data = json.dumps(body).encode("utf-8")
        last: Exception | None = None
        for attempt in range(self.cfg.max_retries + 1):
            self.limiter.wait()
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with self._opener.open(req, timeout=self.cfg.timeout_s) as r:
                    return json.loads(r.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                last = e
                if 300 <= e.code < 400:
                    raise RuntimeError(f"HTTP {e.code} from endpoint: redirects are not followed (the API key "
                                       "would go along); set base_url to the final URL") from None
                if e.code not in RETRY_STATUS:
                    raise RuntimeError(f"HTTP {e.code} from endpoint") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = e
            if attempt < self.cfg.max_retries:
                time.sleep(min(8.0, 0.2 * 2**attempt))
        raise RuntimeError(f"endpoint failed after {self.cfg.max_retries + 1} attempts: {_describe(last)}")

    def _one(self, p: PreparedInput) -> np.ndarray:
        return probs_from_response(self._post(request_body(self.cfg.model, p, self.cfg.guideline)))

    def _score(self, rows: list[PreparedInput]) -> np.ndarray:
        raise NotImplementedError  # per-row errors handled in judge()

    def judge(self, batch: Sequence[JudgeInput]) -> list[JudgeOutput]:
        # Each row is its own request, so one failed request marks only its row.
        def one(row: JudgeInput) -> JudgeOutput:
            out = judge_scored(self, [row], lambda ps: np.stack([self._one(ps[0])]))[0]
            if out.error and self._api_key and self._api_key in out.error:
                out.error = out.error.replace(self._api_key, "***")
            return out

        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as ex:
            return list(ex.map(one, batch))
