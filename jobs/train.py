"""Two-stage contrastive fine-tuning of the retriever (Ray Train).

Thin entry point over `strata train`."""

from _entry import run

if __name__ == "__main__":
    run("train")
