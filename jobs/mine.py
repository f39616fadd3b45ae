"""Mine structured + ANN hard negatives into the training examples.

Thin entry point over `strata mine run`."""

from _entry import run

if __name__ == "__main__":
    run("mine", "run")
