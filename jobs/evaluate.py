"""Full-corpus retrieval metrics over a BEIR folder. Thin entry point over `strata eval`."""

from _entry import run

if __name__ == "__main__":
    run("eval")
