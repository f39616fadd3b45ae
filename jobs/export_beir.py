"""Export a labelled split and its catalog as BEIR. Thin entry point over `strata export-beir`."""

from _entry import run

if __name__ == "__main__":
    run("export-beir")
