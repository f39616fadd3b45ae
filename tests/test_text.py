import hashlib

from strata.text import (
    clean_text,
    normalize_query,
    product_text,
    query_bucket,
    split_of,
    stable_draw,
    stable_hash,
)

QUERIES = ["deck over", "Deck  Over", "cordless drill 20v", "ünïcode query", "", "a" * 300]


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


def test_product_text_joins_title_and_description():
    assert product_text("DEWALT Drill", "20V kit") == "DEWALT Drill 20V kit"
    assert product_text("Only a title", None) == "Only a title"
    assert product_text(None, "only a description") == "only a description"
    assert product_text(None, None) == product_text("", "") == ""
    # inner spacing kept (2 + the joining space + 1), the ends stripped
    assert product_text("  Padded  ", " text\n") == "Padded    text"


def test_stable_hash_and_draw_by_hand():
    # sha1(b"abc") = a9993e36 4706816a ...: the first 4 / 8 bytes, big-endian
    assert stable_hash("abc", nbytes=4) == 0xA9993E36
    assert stable_hash("abc") == 0xA9993E364706816A
    assert stable_draw("abc", nbytes=4) == 0xA9993E36 / 2**32
    assert stable_draw("abc", nbytes=4, scale=0xFFFFFFFF) == 0xA9993E36 / 0xFFFFFFFF
    # the salt is prefixed with the separator: ("x", "abc") hashes "x\x00abc", or "x:abc" with sep=":"
    assert stable_hash("abc", "x") == int.from_bytes(hashlib.sha1(b"x\x00abc").digest()[:8], "big")
    assert stable_hash("abc", "x", sep=":") == stable_hash("x:abc")


def test_the_shared_draw_gives_every_old_formula_its_values():
    """The hand-written draws the shared function replaced, verbatim: no split, sample or bucket moves."""

    def old_query_bucket(query, salt="strata-v1"):  # strata.text.query_bucket
        digest = hashlib.sha1(f"{salt}\x00{normalize_query(query)}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def old_in_dev_draw(query_norm):  # strata.evaluate.engagement_devset.in_dev
        return int(hashlib.sha1(("dev:" + query_norm).encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF

    def old_sample_key(qid):  # strata.evaluate.beir_eval.sample_queries
        return hashlib.sha1(qid.encode("utf-8")).hexdigest()

    for q in QUERIES:
        for salt in ("strata-v1", "mine-13", "judge-stack-v1"):
            assert query_bucket(q, salt) == old_query_bucket(q, salt)
        assert stable_draw(q, "dev", sep=":", nbytes=4, scale=0xFFFFFFFF) == old_in_dev_draw(q)
    qids = [f"q{i}" for i in range(300)] + QUERIES
    new_order = sorted(qids, key=lambda q: (stable_hash(q, nbytes=20), q))
    assert new_order == sorted(qids, key=lambda q: (old_sample_key(q), q))
