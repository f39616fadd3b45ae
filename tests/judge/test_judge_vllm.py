"""The vllm judge end to end on CPU: the real ``vLLMEngineProcessorConfig``, Ray Data LLM's own ``Processor``
(its preprocess/postprocess wrapping and error-row bypass) and our preprocess/postprocess; only the GPU stages
(chat template, tokenize, vLLM engine, detokenize) are replaced by one stand-in stage that answers as vLLM's
engine stage does: a ``vLLMOutputData`` row whose ``logprobs`` hold, per generated token,
{token_id: {logprob, rank, decoded_token}}, and ``__inference_error__`` set on a row the engine failed on."""

import math
from typing import Any, Dict, Type

import pandas as pd
import pytest

from strata.judge.config import JudgeConfig
from strata.judge.job import JudgeFailures, missing_pairs, read_candidates, run_judging
from strata.judge.protocol import BACKEND_ERROR, EMPTY_QUERY, OK
from strata.tables import Lakehouse

llm = pytest.importorskip("ray.data.llm")
from ray.llm._internal.batch.stages.base import StatefulStage, StatefulStageUDF  # noqa: E402
from ray.llm._internal.batch.stages.vllm_engine_stage import vLLMOutputData  # noqa: E402

# What the stand-in "model" answers, keyed by a word in the product text: {decoded token: probability}.
ANSWERS = {
    "EXACT": {"2": 0.6, " 1": 0.2, "Sure": 0.15, "0": 0.05},  # -> P = (.05, .2, .6) / .85, grade 2
    "PARTIAL": {"1": 0.5, "0": 0.3, "2": 0.1, "The": 0.1},  # -> P = (.3, .5, .1) / .9, grade 1
    "OFFTOPIC": {"0": 0.9, "1": 0.05, "2": 0.05},  # -> grade 0
    "RAMBLE": {"Sure": 0.7, "I": 0.3},  # no grade token among the top logprobs -> error:backend
}
HEALED = {"2": 0.5, "1": 0.3, "0": 0.2}  # what a working engine answers for RAMBLE / CRASH rows


class StandInEngineUDF(StatefulStageUDF):
    """vLLM's engine stage without the GPU: checks it got the shared judge prompt, answers from ``ANSWERS``."""

    def __init__(self, data_column: str, expected_input_keys: list, broken: bool = True):
        super().__init__(data_column, expected_input_keys)
        self.broken = broken

    async def udf(self, rows: list):
        from strata.judge.openai_backend import request_body
        from strata.judge.protocol import JudgeInput, prepare

        for row in rows:
            idx = row[self.IDX_IN_BATCH_COLUMN]
            sp = dict(row["sampling_params"])
            assert sp == {"max_tokens": 1, "temperature": 0.0, "logprobs": 20, "detokenize": True}, sp
            text = row["product_text"]
            if row["query"]:  # the same messages the openai backend sends for this pair
                want = request_body("m", prepare(JudgeInput(row["query"], text, row.get("category"))),
                                    "relevance_v1")["messages"]
                got = [dict(m) for m in row["messages"]]
                assert got == want, got
            word = next((w for w in (*ANSWERS, "CRASH") if w in text), "OFFTOPIC")
            if word == "CRASH" and self.broken:  # as vLLMEngineStageUDF with should_continue_on_error
                out = {**vLLMOutputData(prompt="", num_input_tokens=0).model_dump(),
                       "__inference_error__": "RuntimeError: stand-in engine failure"}
            else:
                dist = HEALED if word in ("CRASH", "RAMBLE") and not self.broken else ANSWERS[word]
                top = {100 + k: {"logprob": math.log(p), "rank": k + 1, "decoded_token": t}
                       for k, (t, p) in enumerate(sorted(dist.items(), key=lambda kv: -kv[1]))}
                first = next(iter(top))
                out = {**vLLMOutputData(prompt="", num_input_tokens=1, generated_tokens=[first],
                                        generated_text=top[first]["decoded_token"], num_generated_tokens=1,
                                        logprobs=[top]).model_dump(), "__inference_error__": ""}
            yield {self.IDX_IN_BATCH_COLUMN: idx, **out}


class StandInEngineStage(StatefulStage):
    fn: Type[StatefulStageUDF] = StandInEngineUDF

    def get_required_input_keys(self) -> Dict[str, str]:
        return {"messages": "chat messages", "sampling_params": "vLLM sampling params"}


def stand_in_build(broken: bool = True):
    """``ray.data.llm.build_processor`` with the GPU stages replaced by the stand-in engine stage."""
    seen: list[Any] = []

    def build(config, preprocess=None, postprocess=None):
        seen.append(config)
        stage = StandInEngineStage(fn_constructor_kwargs={"broken": broken},
                                   map_batches_kwargs={"concurrency": 1, "num_cpus": 0.25})
        return llm.Processor(config, [stage], preprocess=preprocess, postprocess=postprocess)

    build.seen = seen
    return build


def _candidates() -> pd.DataFrame:
    rows = [("cordless drill", "p1", "EXACT DEWALT 20V drill"), ("cordless drill", "p2", "PARTIAL drill bit set"),
            ("cordless drill", "p3", "OFFTOPIC garden hose"), ("cordless drill", "p4", "RAMBLE drill case"),
            ("cordless drill", "p5", "CRASH drill charger"), ("", "p6", "EXACT empty query row")]
    return read_candidates(pd.DataFrame([{"source": "toy", "query": q, "product_id": p, "title": t}
                                         for q, p, t in rows]))


def _probs(dist: dict) -> list[float]:
    mass = [sum(p for t, p in dist.items() if t.strip() == str(g)) for g in range(3)]
    return [m / sum(mass) for m in mass]


def test_vllm_job_maps_logprobs_merges_retries_failures_and_resumes(engines, tmp_path):
    lh = Lakehouse(tmp_path / "lh")
    cands = _candidates()
    cfg = JudgeConfig(backend="vllm", model="org/Judge-LLM", batch_size=2, chunk_rows=4, max_error_share=0.5)
    build = stand_in_build(broken=True)

    first = run_judging(engines, lh, cands, cfg, "run-1", vllm_build=build)
    assert type(build.seen[0]) is llm.vLLMEngineProcessorConfig and build.seen[0].model_source == "org/Judge-LLM"
    assert first["ray"] is True and first["judge_id"].startswith("vllm-Judge-LLM@")
    # 6 pairs: 3 graded, 2 judge failures (no grade token; engine error), 1 empty query. 2/6 <= 0.5.
    assert (first["judged"], first["errors"], first["failed"], first["input_errors"]) == (6, 3, 2, 1)
    assert first["error_share"] == pytest.approx(2 / 6, abs=1e-6)

    j = lh.read_arrow("judgments").to_pandas().set_index("product_id").sort_index()
    assert len(j) == 6 and (j["judge_id"] == first["judge_id"]).all()
    assert (j["judge_version"] == first["judge_version"]).all() and (j["run_id"] == "run-1").all()
    assert list(j.loc[["p1", "p2", "p3"], "status"]) == [OK] * 3
    assert list(j.loc[["p1", "p2", "p3"], "grade"]) == [2, 1, 0]
    for pid, word in (("p1", "EXACT"), ("p2", "PARTIAL"), ("p3", "OFFTOPIC")):
        assert list(j.loc[pid, ["p0", "p1", "p2"]]) == pytest.approx(_probs(ANSWERS[word]), abs=1e-9)
    assert list(j.loc["p1", ["p0", "p1", "p2"]]) == pytest.approx([0.05 / 0.85, 0.2 / 0.85, 0.6 / 0.85])
    assert j.loc["p4", "status"] == BACKEND_ERROR and "no grade token" in j.loc["p4", "error"]
    assert j.loc["p5", "status"] == BACKEND_ERROR
    assert j.loc["p5", "error"] == "vLLM engine: RuntimeError: stand-in engine failure"
    assert j.loc["p6", "status"] == EMPTY_QUERY
    assert j.loc[["p4", "p5", "p6"], "grade"].isna().all() and j.loc[["p4", "p5", "p6"], "p2"].isna().all()

    # The failures are not verdicts: the resume hands exactly them back; the input error is final.
    assert sorted(missing_pairs(lh, cands, first["judge_id"])["product_id"]) == ["p4", "p5"]

    # Still broken, default max_error_share (0.01): 2 of 2 fail -> the run writes them and fails.
    with pytest.raises(JudgeFailures, match="failed on 2 of 2 pairs") as e:
        run_judging(engines, lh, cands, cfg.model_copy(update={"max_error_share": 0.01}), "run-2",
                    vllm_build=stand_in_build(broken=True))
    assert (e.value.summary["already_judged"], e.value.summary["failed"]) == (4, 2)

    healed = run_judging(engines, lh, cands, cfg, "run-3", vllm_build=stand_in_build(broken=False))
    assert (healed["already_judged"], healed["judged"], healed["errors"]) == (4, 2, 0)
    j = lh.read_arrow("judgments").to_pandas().set_index("product_id").sort_index()
    assert len(j) == 6 and list(j.loc[["p4", "p5"], "grade"]) == [2, 2]
    assert list(j.loc["p4", ["p0", "p1", "p2"]]) == pytest.approx([0.2, 0.3, 0.5])
    assert list(j["run_id"]) == ["run-1", "run-1", "run-1", "run-3", "run-3", "run-1"]  # ok verdicts kept

    again = run_judging(engines, lh, cands, cfg, "run-4", vllm_build=stand_in_build(broken=False))
    assert (again["already_judged"], again["judged"]) == (6, 0)


def test_vllm_judge_protocol_over_the_processor(engines):
    """``load_judge``'s vllm judge (what ``strata judge calibrate`` uses): one output per input, in order."""
    from strata.judge.protocol import JudgeInput
    from strata.judge.vllm_backend import VLLMJudge

    engines.ray()
    j = VLLMJudge(JudgeConfig(backend="vllm", model="m", batch_size=2), build=stand_in_build(broken=True))
    out = j.judge([JudgeInput("drill", "OFFTOPIC hose"), JudgeInput("drill", "CRASH x"), JudgeInput("", "EXACT"),
                   JudgeInput("drill", "EXACT drill")])
    assert [o.status for o in out] == [OK, BACKEND_ERROR, EMPTY_QUERY, OK]
    assert [o.grade for o in out] == [0, None, None, 2]
    assert out[3].probs == pytest.approx(tuple(_probs(ANSWERS["EXACT"])))
    assert all(o.judge_id == j.judge_id for o in out) and j.judge([]) == []
