"""The cyclic garbage collector's settings for the long-running services (pacing worker, sink).

A worker keeps the state of thousands of targets and renews part of it all the time: folded
state, the table's JSON values, delivery futures, decision records. Those objects live for
seconds or minutes, so CPython's collector promotes them to its oldest generation. With its
default thresholds (700, 10, 10) it then walks every tracked object in the process about every
70,000 net allocations.

Measured with ``gc.callbacks`` on the sustained 10,000-target run (StatBatch records at 10,000
events/s for 60 s, ``python -m tests.benchmarks.throughput --rounds 0 --contenders worker
--sustained-s 60 --sustained-formats batch``):
- with the defaults, the worker made 39 full collections, which took 18 of its 46 CPU seconds;
  the sink spent 15 of its 38 s collecting;
- with these settings the worker spent 4.1 of 34 s collecting, and the sink 2.8 of 24.5 s;
- end-to-end p99 fell from 15.0 s to 5.4 s.

Reference counting still frees every object the moment it is unreachable. Only garbage held in
reference cycles waits longer, and at most 20,000 allocations.

The objects alive once the service is built (modules, classes, the Faust app) are moved out of
the collector's reach (``gc.freeze``): they live as long as the process, and a full collection
no longer walks them.
"""

from __future__ import annotations

import gc

#: Net allocations between two collections of the youngest generation (CPython's default: 700).
YOUNG_THRESHOLD = 20_000


def tune_for_long_running_service() -> None:
    """Collect and freeze what start-up built, and collect the young generation less often.

    Call it once the service's objects are built, just before it starts serving. A second
    call is harmless: it freezes whatever start-up objects are new since the first.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
