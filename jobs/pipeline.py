"""The main job: ingest, dev set, embed + index, evaluate. Thin entry point over `strata run`."""

from _entry import run

if __name__ == "__main__":
    run("run")
