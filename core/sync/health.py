"""How the sync loops are doing, for /healthcheck: storage write failures and loop liveness.

A failed storage write does not stop syncing (the loops go on from memory and retry): it is
logged once per outage and counted here, so an operator sees it in /healthcheck instead of a
bot that quietly stopped persisting. A loop that has not finished a round for a while is stuck.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthReport:
    loops: int  # sync loops running in this process
    stalled: tuple[int, ...]  # guilds whose loop has not finished a round for `stall_after_s`
    write_failures: int  # storage writes that failed since the process started
    failing_for_s: float | None  # how long writes have been failing (None: they work)

    @property
    def healthy(self) -> bool:
        return not self.stalled


class SyncHealth:
    """Shared by every engine of the process (the composition root makes one)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, stall_after_s: float = 30.0
    ) -> None:
        self._clock = clock
        self._stall_after_s = stall_after_s
        self._rounds: dict[int, float] = {}
        self.write_failures = 0
        self._failing_since: float | None = None

    def round_done(self, guild_id: int) -> None:
        self._rounds[guild_id] = self._clock()

    def forget(self, guild_id: int) -> None:
        self._rounds.pop(guild_id, None)

    def storage_failed(self, guild_id: int, what: str, error: Exception) -> None:
        self.write_failures += 1
        if self._failing_since is None:  # once per outage: a full disk fails every round
            self._failing_since = self._clock()
            log.error(
                "guild %s: %s failed: %r; syncing goes on from memory and retries",
                guild_id,
                what,
                error,
            )

    def storage_ok(self) -> None:
        if self._failing_since is not None:
            log.warning("storage writes work again")
            self._failing_since = None

    def report(self) -> HealthReport:
        now = self._clock()
        stalled = tuple(g for g, at in self._rounds.items() if now - at > self._stall_after_s)
        failing = None if self._failing_since is None else now - self._failing_since
        return HealthReport(len(self._rounds), stalled, self.write_failures, failing)
