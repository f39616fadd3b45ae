"""Peak resident memory of a benchmark phase (this process and/or its children, e.g. Ray workers), sampled
in a thread: shared by the bench scripts."""

from __future__ import annotations

import threading


class PeakRSS:
    """Peak resident memory of this process's children (and, with ``include_self``, itself), sampled."""

    def __init__(self, every: float = 0.25, include_self: bool = False):
        import psutil

        self.proc, self.every, self.peak, self._stop = psutil.Process(), every, 0, threading.Event()
        self.include_self = include_self

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                procs = [*([self.proc] if self.include_self else []), *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            self._stop.wait(self.every)

    def __enter__(self):
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self.t.join()
