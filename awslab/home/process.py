"""How an awslab process sits with Python's cyclic garbage collector.

A command or a local AWS holds botocore's parsed models and clients (and a local AWS moto's
backends): hundreds of thousands of objects that live as long as the process. With Python's
default thresholds a young collection ran every 700 allocations, and every tenth of them or so
a full one walked all of those objects again: 7-9 % of the CPU of the suite's workers and local
AWSes, 60-90 ms per full collection. ``collect_less_often`` makes young collections rarer, so
full ones are rarer too; garbage in cycles is still collected. ``skip_collection_at_exit``
freezes what is left at exit (``gc.freeze``), so the interpreter's last collection does not walk
it either: a quarter of a second of every command. Both are set once per process.
"""

from __future__ import annotations

import atexit
import functools
import gc

YOUNG_THRESHOLD = 10_000   # Python's default: 700


@functools.cache
def collect_less_often() -> None:
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, young), older, oldest)


@functools.cache
def skip_collection_at_exit() -> None:
    """At exit every object is put out of the collector's reach, after or before the other exit
    handlers as they were registered: they run as before (logging's flushes its handlers itself;
    the executors' threads are joined before any handler runs)."""
    atexit.register(gc.freeze)
