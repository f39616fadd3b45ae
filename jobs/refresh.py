"""The whole nightly refresh in one process: every stage, the promotion gate and the index.

Thin entry point over `strata refresh`."""

from _entry import run

if __name__ == "__main__":
    run("refresh")
