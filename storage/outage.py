"""One log line per storage outage, not one traceback per failed call.

When the database stops answering, every command, page and sync tick fails the same way for as
long as it lasts; a traceback for each would bury the one fact the operator needs. `Outage`
logs a WARNING when the first call fails and an INFO line with the duration when a call
succeeds again. Both backends report to it from their error-translating wrappers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("storage")


class Outage:
    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name  # the backend's URL without credentials
        self._clock = clock
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, reason: BaseException) -> None:
        if self._since is None:
            self._since = self._clock()
            log.warning(
                "storage %s is not answering (%s); users are told to try again shortly",
                self._name,
                reason,
            )

    def answered(self) -> None:
        if self._since is not None:
            lasted = self._clock() - self._since
            self._since = None
            log.info("storage %s answers again after %.0f s", self._name, lasted)
