from strata.pipeline.report import best_line, write_report

EVAL = {
    "dataset": "homedepot-dev",
    "num_docs": 10,
    "retrievers": {
        "baseline": {"ndcg@10": 0.2, "recall@100": 0.5, "mrr@10": 0.3, "num_queries": 4, "model_id": "m@1"},
        "bm25": {"ndcg@10": 0.3, "recall@100": 0.6, "mrr@10": 0.4, "num_queries": 4},
    },
}


def test_best_line_names_the_winner():
    assert best_line(EVAL).startswith("**Best ndcg@10: bm25 (0.3000)**")


def test_report_has_metrics_counts_and_command(tmp_path):
    p = write_report(
        tmp_path / "report.md", run_id="r", evaluation=EVAL,
        ingest_counts=[{"source": "homedepot", "target_table": "labels", "read": 3, "accepted": 2,
                        "quarantined": 1, "upserted": 2}],
        timings={"ingest": 1.5}, table_versions={"after_ingest": {"labels": 0}}, command="strata run",
    )
    text = p.read_text()
    assert "| baseline | 0.2000 | 0.5000 | 0.3000 | 4 | m@1 |" in text
    assert "| homedepot | labels | 3 | 2 | 1 | 2 |" in text
    assert "strata run" in text
