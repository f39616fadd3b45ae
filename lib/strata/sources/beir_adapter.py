"""A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) as canonical tables.

Any public BEIR dataset with graded qrels becomes products + queries + labels, so it flows through the
same dev-set export and evaluation as the retail sources. Rows carry ``source`` ``beir`` (the namespace
the dev-set export and ``eval.dataset=beir`` look in): ingest one BEIR dataset per lakehouse. The labels'
and queries' ``split`` is the qrels file's stem (``test``, ``dev``, ...), not our hash split: BEIR splits
are fixed by their publishers.
"""

from __future__ import annotations

from pathlib import Path

from strata.config_base import SplitConfig
from strata.sources.base import Collector, SourceData, SourceSchemaError, take
from strata.sources.beir import BeirFormatError, read_beir
from strata.text import clean_text, normalize_query

SOURCE = "beir"


def load_beir(
    path: Path, *, limit: int | None = None, split: SplitConfig = SplitConfig(), qrels_split: str | None = None
) -> SourceData:
    """BEIR folder -> products, queries, labels. ``limit`` applies to corpus, queries and qrels each."""
    try:
        ds = read_beir(path, split=qrels_split)
    except BeirFormatError as e:
        raise SourceSchemaError(str(e)) from None
    out = Collector(SOURCE, ("products", "queries", "labels"))
    for doc_id, doc in take(ds.corpus.items(), limit):
        out.read("products")
        title, text = clean_text(doc.get("title")), clean_text(doc.get("text"))
        loc = f"corpus.jsonl:{doc_id}"
        if not (title or text):
            out.reject("products", loc, str(doc), "document has neither title nor text")
            continue
        out.accept(
            "products",
            loc,
            {
                "product_id": doc_id,
                "source": SOURCE,
                "title": title or text,
                "description": text if title else None,
                "brand": None,
                "category_id": None,
                "attributes": {},
            },
        )
    for qid, text in take(ds.queries.items(), limit):
        out.read("queries")
        loc = f"queries.jsonl:{qid}"
        qn = normalize_query(text)
        if not qn:
            out.reject("queries", loc, text, "empty query text")
            continue
        out.accept(
            "queries",
            loc,
            {"source": SOURCE, "query_id": qid, "query": text, "query_norm": qn, "query_class": None,
             "split": ds.split},
        )
    pairs = ((qid, did, g) for qid, rel in ds.qrels.items() for did, g in rel.items())
    for qid, did, grade in take(pairs, limit):
        out.read("labels")
        loc = f"qrels/{ds.split}.tsv:{qid}:{did}"
        text = ds.queries[qid]
        qn = normalize_query(text)
        if not qn:
            out.reject("labels", loc, f"{qid}\t{did}\t{grade}", "the query's text is empty")
        elif not 0 <= grade <= 2:
            out.reject("labels", loc, f"{qid}\t{did}\t{grade}", f"grade {grade} is outside 0..2")
        else:
            out.accept(
                "labels",
                loc,
                {"source": SOURCE, "query": text, "query_norm": qn, "product_id": did, "grade": int(grade),
                 "raw_label": str(grade), "split": ds.split},
            )
    out.resolve_conflicts("labels", compare=("grade",))  # two query ids with the same text
    return out.result()
