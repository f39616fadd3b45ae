from strata.text import clean_text, normalize_query, query_bucket, split_of


def test_normalize_query_folds_case_space_and_unicode():
    assert normalize_query("  Deck\tOVER  ") == "deck over"
    assert normalize_query("ｆｕｌｌ width") == "full width"  # NFKC folds full-width forms
    assert normalize_query(None) == ""


def test_clean_text_keeps_case():
    assert clean_text(" BEHR  Premium\n") == "BEHR Premium"


def test_split_is_stable_and_by_normalised_query():
    assert split_of("Deck Over") == split_of("deck   over")
    # pinned values: a change here silently moves queries between train and dev
    assert round(query_bucket("deck over"), 6) == 0.621016
    assert query_bucket("DECK OVER") == query_bucket("deck over")
    share = sum(split_of(f"query {i}", 0.2) == "dev" for i in range(5000)) / 5000
    assert 0.18 < share < 0.22


def test_split_depends_on_salt():
    qs = [f"q{i}" for i in range(200)]
    assert [split_of(q, 0.5, "a") for q in qs] != [split_of(q, 0.5, "b") for q in qs]
