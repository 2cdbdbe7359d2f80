"""Stopping a background task for sure, without waiting forever for it.

`task.cancel(); await task` trusts every await under the task to let the cancel through. One
that does not leaves the task running and its stopper waiting forever: a SIGTERM that never
finishes, a guild's lease never handed over. Python 3.11's `asyncio.wait_for` is one: it drops a
cancel that lands in the loop turn its result does (CPython gh-86296, fixed in 3.12), and
redis-py sends every command through it. The Redis store gives such a cancel back
(storage/redis_store/core.py), but any other library can do the same, so a stop here repeats the
cancel while the task runs on, and gives up after `within`: the task is left behind, said as an
ERROR, and the shutdown goes on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

STOP_S = 5.0  # a cancelled task that has not ended by then is left behind
RECANCEL_S = 1.0  # a task still running this long after a cancel lost it: cancel again


async def stop_task(task: asyncio.Task[Any] | None, *, within: float = STOP_S) -> bool:
    """Cancel `task` and wait until it has ended, for at most `within` seconds; True if it
    ended. A failure of the task is logged, not raised (nobody else awaits it). A cancel of the
    caller is not passed on to the task beyond the one this sends."""
    if task is None or task.done():
        return _reap(task)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            log.error(
                "task %s still runs %.1f s after it was cancelled: left behind",
                task.get_name(),
                within,
            )
            return False
        # Again after RECANCEL_S: a first cancel may have been lost. (Its cleanup may be cut
        # short then, which only a cleanup slower than RECANCEL_S risks.)
        task.cancel()
        await asyncio.wait([task], timeout=min(RECANCEL_S, left))
    return _reap(task)


def _reap(task: asyncio.Task[Any] | None) -> bool:
    if task is not None and not task.cancelled() and (error := task.exception()) is not None:
        log.error("task %s failed", task.get_name(), exc_info=error)
    return True
