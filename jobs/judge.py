"""Judge candidate (query, product) pairs into the judgments table (Ray Data).

Thin entry point over `strata judge score`."""

from _entry import run

if __name__ == "__main__":
    run("judge", "score")
