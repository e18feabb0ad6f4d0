"""Process settings for the long-lived commands (`gymforge agent`, `gymforge run`)."""

from __future__ import annotations

import gc

GC_THRESHOLDS = (10_000, 20, 20)  # CPython's defaults: (700, 10, 10)


def tune_gc() -> None:
    """Freeze what start-up made (modules, clients, settings: never garbage) so that collections skip it,
    and collect the young generation every 10,000 net allocations instead of 700. With hundreds of episodes
    in flight the defaults stop the event loop for 100-250 ms at a time, every episode waiting
    (bench/bench_solver.py part 2 measures it)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
