"""The nightly refresh (the stage graph from the champion, then gate -> promote -> index): ``strata refresh``
with this job's argv."""

from _entry import run

if __name__ == "__main__":
    run("refresh")
