"""Run one job's batches on several workers at once: threads, each with its own database connection.

On PostgreSQL the workers use as many server processes (cores); on SQLite they simply take turns. The
job itself makes sure two workers never share a row (``FOR UPDATE SKIP LOCKED``); this only starts them,
stops the others when one fails, and collects what each returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def in_parallel(workers: int, work: Callable[[threading.Event], T], *, name: str = "palier-job") -> list[T]:
    """``work(stop)`` on ``workers`` threads (on this one when ``workers`` is 1); what each returned.

    ``work`` should return between two batches once ``stop`` is set: it is set when a worker raises, and
    that error is raised here once every worker has returned."""
    stop = threading.Event()

    def guarded() -> T:
        try:
            return work(stop)
        except BaseException:
            stop.set()
            raise

    if workers <= 1:
        return [guarded()]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        futures = [pool.submit(guarded) for _ in range(workers)]
        return [future.result() for future in futures]
