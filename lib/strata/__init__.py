"""Strata: dense product-search retrieval trained on graded relevance."""

__version__ = "0.1.0"

# Grades shared by every source, judge and loss.
IRRELEVANT, PARTIAL, EXACT = 0, 1, 2
GRADES = (IRRELEVANT, PARTIAL, EXACT)
