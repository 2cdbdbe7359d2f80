"""A guild's sync lease: exactly one process commands a guild, and a dead one is replaced fast.

`GuildLease` keeps the lease with its own task, so renewals never wait on a round (and a round
never waits on Discord or Spotify for them): renewed every `ttl/4` while held, tried every
`retry_s` while another process holds it, and at once when that process announces a release
(`poke`, driven by the store's release notifications). The holder name is the process's stable
instance identity, so a process restarted after `kill -9` re-acquires its own leases at once
instead of waiting out the TTL.

Fencing: `valid()` says whether this process may still command the guild, by its own monotonic
clock: the lease counts from when the last successful renewal was *sent*, less a margin, so it
is never believed past the moment the store lets it go. The command path checks it right before
each Spotify request leaves. With a store only this process uses (SQLite,
`LeaseStore.leases_shared` False), a failed write cannot hand the guild to anyone else: the
lease is kept and syncing goes on from memory; with Redis it lapses like any lease whose
renewals do not get through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from core.stopping import stop_task
from storage.base import LeaseStore

log = logging.getLogger(__name__)

LOCAL_TTL_S = 20.0  # lease TTL on a store no other process uses (SQLite)


class GuildLease:
    def __init__(
        self,
        store: LeaseStore | None,
        name: str,
        holder: str,
        *,
        ttl_s: float,
        clock: Callable[[], float],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self.name = name
        self.holder = holder
        self._shared = store is not None and store.leases_shared
        # Nobody else can hold a lease of a store only this process uses: renew it rarely (a
        # restarted process gets its own back at once anyway, by its stable identity).
        self._ttl = ttl_s if self._shared else max(ttl_s, LOCAL_TTL_S)
        self._clock = clock
        self._on_change = on_change
        self._held = store is None
        self._valid_until = float("inf") if store is None else float("-inf")
        self.generation = 0  # +1 on every acquisition: the loop starts from scratch then
        self.failing = False  # the store did not answer the last attempt
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self._held

    @property
    def renew_every_s(self) -> float:
        return self._ttl / 4

    @property
    def retry_s(self) -> float:
        return max(0.1, self._ttl / 6)

    def valid(self) -> bool:
        """May this process command the guild right now (checked before each command)?"""
        if not self._held:
            return False
        return not self._shared or self._clock() < self._valid_until

    def start(self) -> None:
        if self._store is not None and self._task is None:
            self._task = asyncio.create_task(self._keep(), name=f"lease-{self.name}")

    async def check(self) -> bool:
        """Without the renewal task (a round driven by hand): one attempt now; then `valid()`."""
        if self._task is None and self._store is not None:
            await self._attempt(self._store)
        return self.valid()

    def poke(self) -> None:
        """Another process released it: try now."""
        self._poke.set()

    async def aclose(self) -> bool:
        """Stop renewing and release (the store tells other processes); True if released."""
        task, self._task = self._task, None
        await stop_task(task)  # (bounded: a renewal that outlives its cancel is left behind)
        held, self._held = self._held, False
        self._valid_until = float("-inf")
        if self._store is None or not held:
            return False
        try:
            async with asyncio.timeout(2.0):
                return await self._store.release_lease(self.name, self.holder)
        except Exception as error:
            log.warning("releasing lease %s failed: %r", self.name, error)
            return False

    async def _keep(self) -> None:
        assert self._store is not None
        while True:
            await self._attempt(self._store)
            wait = self.renew_every_s if self._held else self.retry_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._poke.wait()
            self._poke.clear()

    async def _attempt(self, store: LeaseStore) -> None:
        sent = self._clock()
        try:
            async with asyncio.timeout(self._ttl / 2):
                if self._held:
                    ok = await store.renew_lease(self.name, self.holder, self._ttl)
                    if not ok and not self._shared:
                        # Renewed too late (a loaded loop) on a store nobody else uses: it is
                        # still ours to take, and nobody commanded meanwhile.
                        ok = await store.acquire_lease(self.name, self.holder, self._ttl)
                else:
                    ok = await store.acquire_lease(self.name, self.holder, self._ttl)
        except Exception as error:
            if not self.failing:  # once per outage: the store may stay down for a while
                log.warning("lease %s: the store did not answer: %r", self.name, error)
            self.failing = True
            if self._held and self._shared and self._clock() >= self._valid_until:
                log.warning("lease %s lapsed while the store was unreachable", self.name)
                self._held = False
                self._on_change()
            return
        if self.failing:
            log.info("lease %s: the store answers again", self.name)
        self.failing = False
        if ok:
            # Margin: our renewal may reach the store later than we sent it, never earlier.
            self._valid_until = sent + self._ttl * 5 / 6
            if not self._held:
                self._held = True
                self.generation += 1
                self._on_change()
        elif self._held:
            log.warning("lease %s: taken over by another process", self.name)
            self._held = False
            self._valid_until = float("-inf")
            self._on_change()
