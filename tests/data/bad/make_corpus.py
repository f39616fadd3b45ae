"""Writes the bad-input corpus in this folder (see README.md). Deterministic: re-running gives the same bytes.

    .venv/bin/python tests/data/bad/make_corpus.py

The files are committed; this script only documents how the binary ones (truncated gzip, zipped 1 MB
titles, UTF-16 XML, NUL bytes, Latin-1 lines) were made. Every file is a few KB.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HD_HEADER = b"id,product_uid,product_title,search_term,relevance\n"
LOG_HEADER = b"user,sku,category,query,click_time,query_time\n"
GOOD_LOG = b"u1,1004622,abcat0701002,gears of war 3,2011-09-14 12:46:28.66,2011-09-14 12:45:07.064\n"
MB = 1_000_000


def write(rel: str, data: bytes) -> None:
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zipped(member: str, data: bytes) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo(member, date_time=(2011, 11, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def long_text(n: int, words: str = "Simpson Strong-Tie 12-Gauge Angle ") -> str:
    return (words * (n // len(words) + 1))[:n]


def product_xml(sku: str, name: str) -> str:
    return (
        f"  <product>\n    <sku>{sku}</sku>\n    <name>{name}</name>\n    <type>Game</type>\n"
        "    <categoryPath>\n      <category><id>cat00000</id><name>Best Buy</name></category>\n"
        "      <category><id>abcat0700000</id><name>Video Games</name></category>\n    </categoryPath>\n"
        "    <manufacturer>City Interactive</manufacturer>\n  </product>\n"
    )


def catalog(*products: tuple[str, str], prolog: str = "") -> str:
    return f"{prolog}<products>\n{''.join(product_xml(s, n) for s, n in products)}</products>\n"


def homedepot() -> None:
    rows = b"".join(
        b"%d,%d,Simpson Strong-Tie 12-Gauge Angle %d,l bracket %d,2.5\n" % (i, 100000 + i, i, i) for i in range(1, 400)
    )
    whole = gz(HD_HEADER + rows)
    write("homedepot/truncated.csv.gz", whole[: len(whole) // 2])

    write("homedepot/semicolon_delimiter.csv", HD_HEADER.replace(b",", b";")
          + b"1;100001;Simpson Strong-Tie 12-Gauge Angle;l bracket;2.5\n"
          + b"2;100002;BEHR Premium Deck Over;deck over;3\n")

    write("homedepot/missing_column.csv", b"id,product_uid,product_title,search_term\n"
          b"1,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket\n2,100002,BEHR Premium Deck Over,deck over\n")

    write("homedepot/mixed_encoding.csv", HD_HEADER
          + "1,100001,Delta Vero Shower Trim 30°,rain shower head,2.33\n".encode()
          + "2,100002,Café Table,cafe table,2\n".encode()
          + "3,100003,Crème Paint – 1 gal.,creme paint,2.67\n".encode()
          + "4,100004,Olé Patio Chair,patio chair,3\n".encode("latin-1")  # one Latin-1 line
          + "5,100005,Husky 24 in. — Tool Box,tool box,2.67\n".encode("cp1252")  # one Windows-1252 line
          + b"6,100006,Whirlpool Microwave,microwave,1\n")

    write("homedepot/nul_bytes.csv", HD_HEADER
          + b"1,100001,Simpson\x00 Angle,l bracket,2.5\n"  # NUL inside the title
          + b"2,100002,BEHR Premium Deck Over,\x00,3\n"  # the query is a lone NUL
          + b"3,100003,Whirlpool Microwave,microwave,1\n"
          + b"\x00" * 64)  # zero padding at the end (a crash while writing)

    write("homedepot/conflicting_duplicates.csv", HD_HEADER
          + b"1,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket,2.5\n"
          + b"2,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket,2.5\n"  # exact repeat: accepted
          + b"3,100001,Simpson Strong-Tie ANGLE BRACKET,angle bracket,3\n"  # same product, other title
          + b"4,100002,BEHR Premium Deck Over,deck over,3\n"
          + b"5,100002,BEHR Premium Deck Over,Deck  Over,1\n")  # same (query_norm, product), other grade

    titles = HD_HEADER + b"".join(line.encode() + b"\n" for line in [
        f"1,100001,{long_text(MB)},l bracket,2.5",  # 1 MB, unquoted
        "2,100002,BEHR Premium Deck Over,deck over,3",
        f'3,100003,"{long_text(MB, "Whirlpool Microwave, 1.9 cu. ft. ")}",microwave,1',  # 1 MB, quoted
        f"4,100004,{long_text(5000)},angle,2",  # 5,000 characters: over the cap
        f"5,100005,{long_text(2000)},angle bracket,2",  # exactly at the cap: accepted
        "6,100006,Husky Tool Box,tool box,2.67",
    ])
    write("homedepot/long_titles.csv.gz", gz(titles))

    write("homedepot/empty_query.csv", HD_HEADER
          + b"1,100001,Simpson Strong-Tie 12-Gauge Angle,,2.5\n"
          + b'2,100002,BEHR Premium Deck Over,"   ",3\n'
          + b"3,100003,Whirlpool Microwave,microwave,1\n")

    write("homedepot/bad_grades.csv", HD_HEADER
          + b"1,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket,abc\n"
          + b"2,100002,BEHR Premium Deck Over,deck over,\n"
          + b'3,100003,Whirlpool Microwave,microwave,"2,5"\n'
          + b"4,100004,Husky Tool Box,tool box,4\n"
          + b"5,100005,Cafe Table,cafe table,NaN\n"
          + b"6,100006,Delta Shower Trim,shower trim,2.33\n")


def bestbuy() -> None:
    rows = b"".join(
        b"u%d,1004622,abcat0701002,gears of war %d,2011-09-14 12:46:28.66,2011-09-14 12:45:07.064\n" % (i, i)
        for i in range(400)
    )
    whole = gz(LOG_HEADER + rows)
    write("bestbuy-small/truncated_gzip/train.csv.gz", whole[: len(whole) // 2])

    write("bestbuy-small/tab_delimiter/train.csv", (LOG_HEADER + GOOD_LOG).replace(b",", b"\t"))

    write("bestbuy-small/missing_column/train.csv", b"user,sku,category,query,click_time\n"
          b"u1,1004622,abcat0701002,gears of war 3,2011-09-14 12:46:28.66\n")

    write("bestbuy-small/mixed_encoding/train.csv", LOG_HEADER + GOOD_LOG
          + "u2,9854804,abcat0701002,pokémon,2011-09-14 13:00:01,2011-09-14 13:00:00\n".encode()
          + "u3,9854804,abcat0701002,café racer,2011-09-14 13:00:01,2011-09-14 13:00:00\n".encode()
          + "u4,9854804,abcat0701002,jalapeño,2011-09-14 13:00:01,2011-09-14 13:00:00\n".encode()
          + "u5,9854804,abcat0701002,olé 2,2011-09-14 13:00:01,2011-09-14 13:00:00\n".encode("latin-1"))

    write("bestbuy-small/nul_bytes/train.csv", LOG_HEADER + GOOD_LOG
          + b"u2,9854804,abcat0701002,halo\x00reach,2011-09-14 13:00:01,2011-09-14 13:00:00\n"
          + b"\x00" * 64)

    write("bestbuy-small/extra_fields/train.csv", LOG_HEADER + GOOD_LOG  # an unquoted comma in a query
          + b"u2,9854804,abcat0701002,halo, reach,2011-09-14 13:00:01,2011-09-14 13:00:00\n")

    write("bestbuy-small/truncated_record/train.csv", LOG_HEADER + GOOD_LOG  # cut off mid-record, no newline
          + b"u2,9854804,abcat0701002,halo,2011-09-14 13:00:01,2011-09-14 13:00:00\nu3,9854804,abcat07")

    write("bestbuy-small/empty_query/train.csv", LOG_HEADER + GOOD_LOG
          + b"u2,9854804,abcat0701002,,2011-09-14 13:00:01,2011-09-14 13:00:00\n"
          + b'u3,9854804,abcat0701002,"   ",2011-09-14 13:00:01,2011-09-14 13:00:00\n')

    write("bestbuy-small/dates_out_of_range/train.csv", LOG_HEADER + GOOD_LOG
          + b"u2,9854804,abcat0701002,halo,1899-12-31 00:00:01,1899-12-31 00:00:00\n"
          + b"u3,9854804,abcat0701002,halo,2999-01-01 10:00:00,2011-09-14 10:00:00\n"
          + b"u4,9854804,abcat0701002,halo,2011-09-15 10:00:00,2999-01-01 09:59:00\n"
          + b"u5,9854804,abcat0701002,halo,1970-01-01 00:00:00,1970-01-01 00:00:00\n"
          + b"u6,9854804,abcat0701002,halo,2011-09-15 10:00:00,not a date\n")

    good = ("1004622", "Sniper: Ghost Warrior - Xbox 360")
    bomb = ('<?xml version="1.0"?>\n<!DOCTYPE products [\n  <!ENTITY a "aaaaaaaaaa">\n'
            + "".join(f'  <!ENTITY {c} "{("&" + p + ";") * 10}">\n' for p, c in zip("abcdefgh", "bcdefghi"))
            + "]>\n")
    for folder, xml in [
        ("xml_entity_expansion", catalog(("1004622", "&i;"), prolog=bomb).encode()),
        ("xml_external_entity", catalog(("1004622", "&xxe;"), prolog='<?xml version="1.0"?>\n'
                                        '<!DOCTYPE products [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n').encode()),
        ("xml_utf16_entities", catalog(("1004622", "&i;"), prolog=bomb.replace(
            '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')).encode("utf-16")),
        ("conflicting_sku", catalog(good, good, ("1004622", "Sniper: Ghost Warrior - PlayStation 3")).encode()),
    ]:
        write(f"bestbuy-small/{folder}/train.csv", LOG_HEADER + GOOD_LOG)
        write(f"bestbuy-small/{folder}/small_product_data.xml", xml)

    write("bestbuy-small/long_name/train.csv", LOG_HEADER + GOOD_LOG)
    write("bestbuy-small/long_name/small_product_data.xml.zip", zipped(
        "small_product_data.xml", catalog(("1000001", long_text(MB, "Gears of War 3 - Xbox 360 ")), good).encode()))


if __name__ == "__main__":
    homedepot()
    bestbuy()
