"""Load one dataset into the canonical Delta tables. Thin entry point over `strata ingest`."""

from _entry import run

if __name__ == "__main__":
    run("ingest")
