"""The mining report (``strata.mine.report``): streamed in batches, equal to ``summarize`` over the whole table."""

from strata.mine.report import mining_report
from strata.tables import Lakehouse


def test_mining_report_streams_and_equals_summarize(tmp_path, monkeypatch):
    """The report reads training_examples in batches (never ``read_arrow``) and equals ``summarize`` over the
    whole table, per catalog and overall, including across batch boundaries."""
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    from strata.mine.report import summarize
    from strata.tables import spec

    rng = np.random.default_rng(0)
    n = 1000
    sch = spec("training_examples").schema
    cols = {f.name: [None] * n for f in sch}
    cols.update(catalog=[["a", "b"][i % 2] for i in range(n)], query=[f"q{i % 37}" for i in range(n)],
                query_norm=[f"q{i % 37}" for i in range(n)], product_id=[f"p{i}" for i in range(n)],
                grade=[int(x) for x in rng.integers(0, 3, n)],
                source=[["human", "ann", "judge", "random"][i % 4] for i in range(n)],
                judge_grade=[None if i % 3 else int(i % 2) for i in range(n)],
                score=[None if i % 11 == 0 else float(x) for i, x in enumerate(rng.random(n))], synthetic=[False] * n)
    table = pa.Table.from_pydict(cols, schema=sch)
    write_deltalake(str(tmp_path / "lh" / "training_examples"), table)
    lh = Lakehouse(tmp_path / "lh")
    orig = Lakehouse.scan_batches
    monkeypatch.setattr(Lakehouse, "scan_batches", lambda *a, **k: orig(*a, **{**k, "batch_rows": 64}))
    monkeypatch.setattr(Lakehouse, "read_arrow", lambda *a, **k: (_ for _ in ()).throw(AssertionError("whole read")))
    rep = mining_report(lh, tmp_path / "rep.json")
    df = table.to_pandas()
    want = {"overall": summarize(df), "catalogs": {c: summarize(g) for c, g in df.groupby("catalog", sort=True)}}
    assert rep == want
    assert (tmp_path / "rep.json").is_file()
