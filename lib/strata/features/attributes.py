"""Attribute extraction from free text, as Spark SQL expressions (runs the same on Sail and JVM Spark).

Common attributes: ``brand``, ``colour``, ``material``, ``size`` (number + normalised unit), ``dimensions``
(``A x B [x C] unit``), ``pack_count``. Patterns use only syntax shared by Java and Rust regex engines (no
look-around). Every value carries its origin in a parallel ``attribute_sources`` map:

- ``catalog``: a catalog column (products.brand, attributes.color, ...)
- ``title`` / ``description``: a pattern matched in that text
- ``title_prefix``: brand from the leading word(s) of the title, only when that prefix starts >= 5 titles of
  the catalog (two words when >= 80% of that first word's titles share the second) and is not a generic word;
  a first word in ``BIGRAM_ONLY`` (common words: "Home", "American") is never a brand alone, only the
  title's first two words are, when >= 5 titles start with them ("Home Decorators", "American Standard")
- ``query_text`` / ``brand_lexicon``: for queries, a pattern in the query / a known catalog brand in it
"""

from __future__ import annotations

COLOURS = (
    "oil rubbed bronze", "brushed nickel", "satin nickel", "polished chrome", "stainless steel", "black",
    "white", "red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "gray", "grey", "silver",
    "gold", "beige", "ivory", "tan", "almond", "bisque", "chrome", "navy", "teal", "clear", "espresso",
    "charcoal", "cream", "slate", "bronze",
)
MATERIALS = (
    "stainless steel", "galvanized steel", "cast iron", "steel", "aluminum", "aluminium", "wood", "wooden",
    "plywood", "oak", "maple", "cedar", "pine", "bamboo", "plastic", "vinyl", "pvc", "cpvc", "polyester",
    "nylon", "cotton", "leather", "glass", "ceramic", "porcelain", "granite", "marble", "quartz", "concrete",
    "brass", "copper", "iron", "fiberglass", "rubber", "resin", "composite", "metal", "wicker", "acrylic",
)
# Words that start many titles but are not brands.
GENERIC_PREFIXES = (
    "the", "a", "an", "new", "pack", "set", "white", "black", "outdoor", "indoor", "stainless", "round",
    "square", "replacement", "universal", "heavy", "commercial", "decorative", "mini", "large", "small",
    "rectangular", "ceiling", "door", "wall", "wood", "glass", "metal", "steel", "plastic", "vinyl", "oak",
    "solar", "led", "cordless", "electric", "portable", "premium", "classic", "standard", "deluxe", "double",
    "single", "adjustable", "natural", "brushed", "satin", "polished", "oil", "high", "low", "self", "pro",
    "professional", "all", "one", "two", "3-light", "2-light", "1-light", "4-light",
) + COLOURS

# Common words that start two-word brands ("Home Decorators", "American Standard", "Crown Bolt"): alone
# they are never a brand; the title's first two words are, when >= 5 titles of the catalog start with them.
BIGRAM_ONLY = (
    "home", "american", "crown", "general", "national", "master", "royal", "first", "green", "blue", "red",
    "golden", "simple", "true", "best", "great", "united", "pacific", "atlantic", "north", "south", "west",
    "east", "grand", "big", "little", "old", "power", "ideal", "perfect", "classic", "quick", "easy",
    "hampton", "glacier", "commercial", "design", "house", "garden", "lumber", "custom",
)

_UNIT = (
    r"cu\. ?ft\.?|sq\. ?ft\.?|fl\. ?oz\.?|in\.|inch(?:es)?|ft\.|feet|foot|gal\.|gallons?|oz\.|lbs?\.?|mm|cm|"
    r"qt\.|quarts?|watts?|volts?|amps?|gb|tb|mah|btu|\"|ft|in|gal|oz|qt|w|v"
)
_NUM = r"(?:\d+(?:\.\d+)?(?:-\d+/\d+)?|\d+/\d+)"
_DU = r"(?:in\.|in|ft\.|ft|\")"
SIZE_RE = r"(?i)(?:^|[^a-z0-9./])(\d+(?:\.\d+)?(?:[- ]\d+/\d+)?|\d+/\d+) ?-?(" + _UNIT + r")(?:[^a-z0-9]|$)"
DIM_RE = (
    r"(?i)(?:^|[^a-z0-9./-])(" + _NUM + r"(?: ?" + _DU + r")? ?x ?" + _NUM + r"(?: ?" + _DU + r")?(?: ?x ?"
    + _NUM + r")? ?(?:in\.|in|ft\.|ft|\"|cm|mm))"
)
PACK_RE = r"(?i)(?:^|[^a-z0-9])(\d+)[- ]?(?:pack|pk|count|ct|piece|pc)(?:[^a-z]|$)"
PACK_OF_RE = r"(?i)\b(?:pack|box|case|set) of (\d+)\b"


def _alt(words: tuple[str, ...]) -> str:
    return "|".join(sorted((w.replace(" ", r"\s+") for w in words), key=len, reverse=True))


COLOUR_RE = r"(?i)\b(" + _alt(COLOURS) + r")\b"
MATERIAL_RE = r"(?i)\b(" + _alt(MATERIALS) + r")\b"


def _sql_str(s: str) -> str:
    """A regex as a Spark SQL string literal (backslashes and quotes escaped)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ex(text: str, pattern: str, group: int = 1) -> str:
    return f"nullif(regexp_extract(coalesce({text}, ''), {_sql_str(pattern)}, {group}), '')"


# Normalised unit spelling (lower case, no dots or spaces) -> the unit written in the attribute value.
UNITS = {
    "in": "in", "inch": "in", "inches": "in", '"': "in", "ft": "ft", "feet": "ft", "foot": "ft",
    "gal": "gal", "gallon": "gal", "gallons": "gal", "oz": "oz", "floz": "oz", "lb": "lb", "lbs": "lb",
    "cuft": "cu ft", "sqft": "sq ft", "qt": "qt", "quart": "qt", "quarts": "qt", "w": "W", "watt": "W",
    "watts": "W", "v": "V", "volt": "V", "volts": "V", "amp": "A", "amps": "A",
}


def unit_sql(unit: str) -> str:
    """The unit in ``UNITS`` spelling; any other unit as normalised. A map lookup, so the (regex) ``unit``
    expression is evaluated twice per row, not once per unit family as a CASE chain would."""
    u = f"regexp_replace(lower({unit}), '[. ]', '')"
    pairs = ", ".join(f"'{k}', '{v}'" for k, v in UNITS.items())
    return f"coalesce(map({pairs})[{u}], {u})"


def text_attribute_sql(text: str) -> dict[str, str]:
    """Attribute name -> SQL expression (string or NULL) extracted from the text column ``text``."""
    size_num = _ex(text, SIZE_RE, 1)
    size_unit = _ex(text, SIZE_RE, 2)
    return {
        "colour": f"lower(regexp_replace({_ex(text, COLOUR_RE)}, '\\\\s+', ' '))",
        "material": f"lower(regexp_replace({_ex(text, MATERIAL_RE)}, '\\\\s+', ' '))",
        "size": f"CASE WHEN {size_num} IS NOT NULL THEN concat({size_num}, ' ', {unit_sql(size_unit)}) END",
        "dimensions": f"lower(regexp_replace({_ex(text, DIM_RE)}, '\\\\s+', ' '))",
        "pack_count": f"coalesce({_ex(text, PACK_RE)}, {_ex(text, PACK_OF_RE)})",
    }


ATTRIBUTES = ("brand", "colour", "material", "size", "dimensions", "pack_count")


def map_sql(values: dict[str, str]) -> str:
    """A map<string,string> of the non-NULL values (keys in ``ATTRIBUTES`` order)."""
    entries = ", ".join(
        f"named_struct('k', '{k}', 'v', {values[k]})" for k in ATTRIBUTES if k in values
    )
    return f"map_from_entries(filter(array({entries}), e -> e.v IS NOT NULL))"
