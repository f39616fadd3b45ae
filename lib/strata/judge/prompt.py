"""Prompt building for the generative judges (vllm, openai, transformers) and grade-token scoring.

One prompt for every generative backend: the versioned written guideline (``guidelines/relevance_v1.md``)
as the system message and a user message holding the query and the product between explicit delimiters.
Product and query text are length-capped (by ``protocol.prepare``) and escaped so they cannot close the
delimiters or forge a new section; the answer is never parsed from free text: the grade is read from the
probabilities the model gives to the tokens "0", "1", "2" as the next token, so whatever the product text
says, the output can only be a distribution over the three grades.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Sequence

import numpy as np

from strata.judge.protocol import PreparedInput

GUIDELINE_VERSION = "relevance_v1"
GRADE_TOKENS = ("0", "1", "2")
INSTRUCTION = "Grade the product for the query (0, 1 or 2). Answer with the digit only."

# The prompt's own section delimiters (and role names), with or without attributes, in any case or spacing:
# "<product>", "</ product >", "< /query foo='x'>".
_TAG = re.compile(r"<\s*/?\s*(product|query|category|attributes|system|user|assistant)\b[^>]*>", re.IGNORECASE)
# Chat-template and tokenizer special-token shapes: <|im_start|>, <|eot_id|>, [INST], <<SYS>>, any bare tag
# such as <s>, </s>, <start_of_turn>, <file_sep> (SmolLM2 has 17 of those), [SYSTEM_PROMPT]. A tokenizer turns
# such text into the real special token, so it must never reach it verbatim.
_CHAT_MARKERS = re.compile(
    r"<\|[^|>]{0,40}\|>|\[/?INST\]|<</?SYS>>|</?[A-Za-z_][A-Za-z0-9_.:-]{0,39}>|\[/?[A-Z][A-Z_]{2,39}\]"
)
_BRACKETS = str.maketrans({"<": "‹", ">": "›", "[": "(", "]": ")"})


@lru_cache(maxsize=8)
def guideline(version: str = GUIDELINE_VERSION) -> str:
    return resources.files("strata.judge").joinpath("guidelines", f"{version}.md").read_text("utf-8")


def guideline_id(version: str = GUIDELINE_VERSION) -> str:
    """``relevance_v1@<8 hex>``: names the exact guideline text a judgment was made under."""
    return f"{version}@{hashlib.sha256(guideline(version).encode()).hexdigest()[:8]}"


def _visible(text: str) -> str:
    """NFKC (full-width ＜／product＞ becomes </product> *before* matching) and no invisible characters:
    format characters (zero-width space/joiners, bidi overrides, BOM) and controls, which could hide a
    delimiter from the patterns while the model still reads it; line breaks become spaces."""
    text = unicodedata.normalize("NFKC", str(text))
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cf":
            continue
        if cat in ("Cc", "Zl", "Zp"):
            out.append(" ")  # newlines/tabs/controls: one line per section in the user message
            continue
        out.append(ch)
    return "".join(out)


def escape(text: str) -> str:
    """Neutralise delimiter tags and chat-template markers inside untrusted text (kept readable).

    Angle/square brackets of a matched marker become ‹ › ( ), so "</product>" reads as "‹/product›": the
    words stay visible to the model as data but can neither close a section nor become a special token.
    """
    text = _visible(text)
    text = _TAG.sub(lambda m: m.group(0).translate(_BRACKETS), text)
    return _CHAT_MARKERS.sub(lambda m: m.group(0).translate(_BRACKETS), text)


def user_message(p: PreparedInput) -> str:
    lines = [f"<query>{escape(p.query)}</query>", f"<product>{escape(p.product_text)}</product>"]
    if p.category:
        lines.append(f"<category>{escape(p.category)}</category>")
    if p.attributes:
        attrs = "; ".join(f"{escape(k)}: {escape(v)}" for k, v in list(p.attributes.items())[:12])
        lines.append(f"<attributes>{attrs[:512]}</attributes>")
    lines.append(INSTRUCTION)
    return "\n".join(lines)


def messages(p: PreparedInput, version: str = GUIDELINE_VERSION) -> list[dict[str, str]]:
    return [{"role": "system", "content": guideline(version)}, {"role": "user", "content": user_message(p)}]


def probs_from_logprobs(top: Mapping[str, float] | Sequence[tuple[str, float]] | None) -> np.ndarray | None:
    """Grade probabilities from a next-token top-logprobs map (token text -> logprob); None if no grade token.

    Token texts are stripped (" 2" counts as "2"); the mass on the three grade tokens is renormalised.
    """
    if not top:
        return None
    items = top.items() if isinstance(top, Mapping) else top
    mass = np.zeros(3)
    for tok, lp in items:
        t = str(tok).strip()
        if t in GRADE_TOKENS and lp is not None and math.isfinite(float(lp)):
            mass[int(t)] += math.exp(float(lp))
    if mass.sum() <= 0:
        return None
    return mass / mass.sum()


def grade_token_ids(tokenizer: Any) -> list[int]:
    """The single token id of each grade digit (asserts the tokenizer has them as one token)."""
    ids = []
    for t in GRADE_TOKENS:
        enc = tokenizer.encode(t, add_special_tokens=False)
        if len(enc) != 1:
            raise ValueError(f"tokenizer splits grade token {t!r} into {enc}")
        ids.append(enc[0])
    return ids
