"""Query augmentation for training: spelling noise and synthetic queries, always marked ``synthetic``.

Mine and Refine adds misspelled copies of real queries so the retriever tolerates the typos real users
make (Home Depot queries are full of them), and synthetic queries generated from product text so products
no one searched for still get a positive. Both are additive: the original rows are kept unchanged.
"""

from __future__ import annotations

import random
import re
from typing import Callable, Sequence

# QWERTY neighbours (lower case letters and digits): the substitutions a finger slip produces.
_ROWS = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"]
KEY_NEIGHBOURS: dict[str, str] = {}
for r, row in enumerate(_ROWS):
    for c, ch in enumerate(row):
        near = []
        for dr in (-1, 0, 1):
            rr = r + dr
            if 0 <= rr < len(_ROWS):
                for dc in (-1, 0, 1):
                    cc = c + dc
                    if (dr or dc) and 0 <= cc < len(_ROWS[rr]):
                        near.append(_ROWS[rr][cc])
        KEY_NEIGHBOURS[ch] = "".join(near)

EDITS = ("substitute", "delete", "transpose")


def misspell(query: str, rng: random.Random, edits: int = 1) -> str:
    """``query`` with ``edits`` typos (keyboard-neighbour substitution, deletion or transposition) inside
    words of 3+ letters; returned unchanged when it has no such word."""
    out = query
    for _ in range(edits):
        spans = [m.span() for m in re.finditer(r"[A-Za-z]{3,}", out)]
        if not spans:
            return out
        a, b = spans[rng.randrange(len(spans))]
        i = rng.randrange(a, b)
        kind = EDITS[rng.randrange(3)]
        ch = out[i]
        if kind == "substitute" and ch.lower() in KEY_NEIGHBOURS:
            sub = rng.choice(KEY_NEIGHBOURS[ch.lower()])
            out = out[:i] + (sub.upper() if ch.isupper() else sub) + out[i + 1 :]
        elif kind == "transpose" and i + 1 < b and out[i] != out[i + 1]:
            out = out[:i] + out[i + 1] + out[i] + out[i + 2 :]
        else:
            out = out[:i] + out[i + 1 :]
    return out


_UNIT = re.compile(r"^\d+([./-]\d+)*$|^\d+(in|ft|oz|lb|gal|w|v|mm|cm)\.?$", re.I)
_STOP = {"in", "with", "and", "for", "the", "of", "x", "a", "to", "-", "&", "pack", "per"}


def template_query(title: str, brand: str | None, rng: random.Random) -> str:
    """A shopper-like query from a product title: the product-type words at the end of the title, sometimes
    with the brand or one leading descriptor (``"Whirlpool 1.9 cu. ft. Over the Range Microwave in Stainless
    Steel"`` -> ``"over the range microwave"`` / ``"whirlpool microwave"``)."""
    words = [w for w in re.split(r"[\s,()]+", title) if w]
    if brand and words and words[0].lower() == brand.lower():
        words = words[1:]
    # The product type usually precedes " in <colour>" / " with <feature>" tails.
    low = [w.lower().strip(".") for w in words]
    for cut in ("in", "with", "for"):
        if cut in low[2:]:
            k = low.index(cut, 2)
            words, low = words[:k], low[:k]
            break
    core = [w for w, lw in zip(words, low) if lw not in _STOP and not _UNIT.match(lw)]
    if not core:
        return title.lower()
    n = min(len(core), rng.choice((2, 2, 3)))
    q = core[-n:]
    if brand and rng.random() < 0.3:
        q = [brand] + q[-1:]
    return " ".join(q).lower()


def generative_queries(titles: Sequence[str], max_new_tokens: int = 12) -> list[str]:
    """Queries written by the judge's local generative LM (SmolLM2 on CPU): one per title, greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from strata.judge.generative import smollm2_path

    folder, gguf = smollm2_path()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, local_files_only=True).eval()
    out = []
    for t in titles:
        msgs = [{"role": "system", "content": "You write the short search query (2-5 words) a shopper types "
                                              "to find a product. Answer with the query only."},
                {"role": "user", "content": f"Product: {t[:300]}"}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
        if not isinstance(ids, torch.Tensor):
            ids = ids["input_ids"]
        with torch.inference_mode():
            gen = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.eos_token_id)
        text = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).strip().split("\n")[0]
        out.append(re.sub(r"[\"'`]", "", text).strip().lower()[:100])
    return out


QueryWriter = Callable[[Sequence[str], Sequence[str | None], random.Random], list[str]]


def write_synthetic_queries(titles: Sequence[str], brands: Sequence[str | None], rng: random.Random,
                            generator: str = "template") -> list[str]:
    """One synthetic query per product: ``generator`` = template | smollm2 (falls back to the template for
    any empty generation)."""
    if generator == "template":
        return [template_query(t, b, rng) for t, b in zip(titles, brands)]
    if generator != "smollm2":
        raise ValueError(f"synthetic query generator must be template or smollm2 (got {generator!r})")
    gen = generative_queries(titles)
    return [g if g else template_query(t, b, rng) for g, t, b in zip(gen, titles, brands)]
