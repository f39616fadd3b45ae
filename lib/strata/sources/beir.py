"""BEIR folders in and out: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

BEIR is the exchange format with other IR toolkits: any public BEIR dataset with graded qrels can be
evaluated here, and our own dev splits are exported as BEIR so ``strata eval`` and other tools score the
very same files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from strata.text import product_text


class BeirFormatError(ValueError):
    """The folder is not a readable BEIR dataset; the message says which file and line."""


@dataclass
class BeirDataset:
    corpus: dict[str, dict[str, str]]  # doc id -> {"title": ..., "text": ...}
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> graded relevance (0 = judged irrelevant)
    split: str = "test"
    name: str = "beir"
    meta: dict[str, object] = field(default_factory=dict)

    def doc_text(self, doc_id: str) -> str:
        d = self.corpus[doc_id]
        return product_text(d.get("title", ""), d.get("text", ""))

    def judged_queries(self) -> dict[str, str]:
        """Queries with at least one judgment (any grade): the ones metrics average over, as ranx does."""
        return {q: t for q, t in self.queries.items() if self.qrels.get(q)}


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open("r", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise BeirFormatError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict) or "_id" not in obj:
                raise BeirFormatError(f"{path}:{n}: a JSON object with an _id is required")
            rows.append(obj)
    return rows


def qrels_path(folder: Path, split: str | None) -> Path:
    qdir = folder / "qrels"
    if not qdir.is_dir():
        raise BeirFormatError(f"{folder}: no qrels/ folder")
    if split:
        p = qdir / f"{split}.tsv"
        if not p.is_file():
            have = sorted(x.stem for x in qdir.glob("*.tsv"))
            raise BeirFormatError(f"{folder}: no qrels/{split}.tsv (splits present: {have})")
        return p
    for cand in ("test", "dev", "validation", "train"):
        if (qdir / f"{cand}.tsv").is_file():
            return qdir / f"{cand}.tsv"
    files = sorted(qdir.glob("*.tsv"))
    if not files:
        raise BeirFormatError(f"{folder}: qrels/ holds no .tsv file")
    return files[0]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open("r", encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        for n, row in enumerate(reader, 1):
            if not row or all(not c.strip() for c in row):
                continue
            if n == 1 and not row[-1].strip().lstrip("-").isdigit():
                continue  # header: query-id corpus-id score
            if len(row) == 4:  # TREC style: qid 0 docid rel
                row = [row[0], row[2], row[3]]
            if len(row) != 3:
                raise BeirFormatError(f"{path}:{n}: expected 3 tab-separated columns, got {len(row)}")
            qid, did, score = (c.strip() for c in row)
            try:
                grade = int(float(score))
            except ValueError:
                raise BeirFormatError(f"{path}:{n}: score {score!r} is not a number") from None
            qrels.setdefault(qid, {})[did] = grade
    return qrels


def read_beir(folder: str | Path, split: str | None = None) -> BeirDataset:
    """Load a BEIR folder. ``split`` None takes test, then dev, validation, train."""
    folder = Path(folder)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).is_file():
            raise BeirFormatError(f"{folder}: missing {name}")
    corpus = {
        str(r["_id"]): {"title": str(r.get("title") or ""), "text": str(r.get("text") or "")}
        for r in _read_jsonl(folder / "corpus.jsonl")
    }
    queries = {str(r["_id"]): str(r.get("text") or "") for r in _read_jsonl(folder / "queries.jsonl")}
    qp = qrels_path(folder, split)
    qrels = read_qrels(qp)
    # Judgments on unknown queries/docs cannot be scored: say so rather than silently shrinking the set.
    unknown_q = sorted(set(qrels) - set(queries))
    if unknown_q:
        raise BeirFormatError(f"{qp}: {len(unknown_q)} query ids not in queries.jsonl, e.g. {unknown_q[:3]}")
    unknown_d = {d for rel in qrels.values() for d in rel} - set(corpus)
    if unknown_d:
        raise BeirFormatError(
            f"{qp}: {len(unknown_d)} doc ids not in corpus.jsonl, e.g. {sorted(unknown_d)[:3]}"
        )
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, split=qp.stem, name=folder.name)


def corpus_line(doc_id: str, title: str, text: str) -> str:
    """One ``corpus.jsonl`` record (no newline): the format ``write_beir`` and the streamed export share."""
    return json.dumps({"_id": doc_id, "title": title, "text": text})


def write_beir(ds: BeirDataset, folder: str | Path, corpus: bool = True) -> Path:
    """Write a BEIR folder (only queries that have qrels go to queries.jsonl). ``corpus=False`` leaves
    ``corpus.jsonl`` to the caller (the dev-set export streams it)."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    if corpus:
        with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
            for did, d in ds.corpus.items():
                f.write(corpus_line(did, d.get("title", ""), d.get("text", "")) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in ds.queries.items():
            if qid in ds.qrels:
                f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with (folder / "qrels" / f"{ds.split}.tsv").open("w", encoding="utf-8", newline="") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, rel in ds.qrels.items():
            for did, g in rel.items():
                f.write(f"{qid}\t{did}\t{int(g)}\n")
    return folder
