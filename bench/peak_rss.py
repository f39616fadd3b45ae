"""Peak resident memory of a benchmark phase (this process and/or its children, e.g. Ray workers), sampled
in a thread: shared by the bench scripts.

Two sums: RSS counts a page shared by several processes once per process (torch's libraries in the driver and
in every Ray worker, Ray's object store), so a many-process run looks bigger than it is; PSS (proportional set
size) splits each shared page among the processes mapping it, so the sum is what the tree takes from the
machine. For one process the two are close."""

from __future__ import annotations

import threading


class PeakRSS:
    """Peak resident memory of this process's children (and, with ``include_self``, itself), sampled."""

    def __init__(self, every: float = 0.25, include_self: bool = False, pss: bool = False):
        import psutil

        self.proc, self.every, self.peak, self._stop = psutil.Process(), every, 0, threading.Event()
        self.include_self = include_self
        self.pss = pss  # also sample the PSS sum (reads /proc/PID/smaps_rollup: slower, Linux only)
        self.peak_pss = 0
        self.pss_by_process: dict[str, int] = {}  # at the PSS peak: MB per process name (Ray actors by class)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                procs = [*([self.proc] if self.include_self else []), *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
                if self.pss:
                    self._sample_pss(procs)
            except psutil.Error:
                pass
            self._stop.wait(self.every)

    def _sample_pss(self, procs: list) -> None:
        import psutil

        by: dict[str, int] = {}
        for p in procs:
            try:
                name = p.name() if p.pid != self.proc.pid else "driver"
                by[name] = by.get(name, 0) + p.memory_full_info().pss
            except psutil.Error:
                continue
        total = sum(by.values())
        if total > self.peak_pss:
            self.peak_pss = total
            self.pss_by_process = {k: round(v / 2**20) for k, v in sorted(by.items(), key=lambda kv: -kv[1])}

    def __enter__(self):
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self.t.join()
