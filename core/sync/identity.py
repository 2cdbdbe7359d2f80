"""Claiming this process's instance identity in the shared store, so no two live processes
share one.

The sync leases are held under the process's instance identity (bot/instance.py), and a store
hands a lease to its holder name however many processes use that name: two live processes with
one identity would both command a guild. The local guard (a lock on a slot file in the data
folder) fails on NFS without locks, on a data folder copied to another machine, and with one
`INSTANCE_ID` given to two processes. So at start the identity is also claimed in the shared
store: a lease named `instance:<id>`, held under this boot's own name (host, pid and a random
nonce) and renewed by its own task.

Held by another boot, the claim is taken over at once only when that boot is provably dead: it
ran on this host and its pid is ours now (a restarted container) or gone (`kill -9`), so a
restarted process still gets its guilds' leases back at once. Otherwise the claim is given one
TTL to lapse (a dead process elsewhere stops renewing it); still held after that, a live
process has this identity, and this one takes a random identity and says so as an ERROR (an
operator must fix the deployment; syncing stays correct meanwhile, only a restart of this
process waits out its leases).

A store only this process uses (SQLite) needs no claim: nothing else can hold its leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from core.stopping import stop_task
from storage.base import LeaseStore

log = logging.getLogger(__name__)

CLAIM_TTL_S = 6.0


@dataclass(frozen=True)
class Boot:
    """This run of the process: who holds the claim."""

    host: str
    pid: int
    nonce: str

    @classmethod
    def current(cls) -> Boot:
        return cls(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:12])

    def name(self) -> str:
        return f"{self.host}|{self.pid}|{self.nonce}"

    @classmethod
    def parse(cls, name: str) -> Boot | None:
        host, _, rest = name.rpartition("|")  # (hostnames have no "|")
        host, _, pid = host.rpartition("|")
        try:
            return cls(host, int(pid), rest)
        except ValueError:
            return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def random_id() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class InstanceClaim:
    """Holds `instance:<id>` for this boot; `identity` is the id the leases must use."""

    def __init__(
        self,
        store: LeaseStore,
        *,
        boot: Boot | None = None,
        ttl_s: float = CLAIM_TTL_S,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self._store = store
        self.boot = boot or Boot.current()
        self._ttl = ttl_s
        self._alive = alive
        self.identity: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def _name(self) -> str:
        return f"instance:{self.identity}"

    async def claim(self, wanted: str) -> str:
        """Claim `wanted` (or a random id when a live process has it); starts the renewals."""
        if not self._store.leases_shared:
            self.identity = wanted
            return wanted
        identity = wanted
        if not await self._take(wanted):
            identity = random_id()
            log.error(
                "instance id %s is in use by another live process (a duplicated INSTANCE_ID, a "
                "copied data folder, or a shared folder without file locks): running as %s "
                "instead; give every process its own identity",
                wanted,
                identity,
            )
            await self._take(identity)
        self.identity = identity
        self._task = asyncio.create_task(self._renew(), name="instance-claim")
        return identity

    async def _take(self, identity: str) -> bool:
        name, mine = f"instance:{identity}", self.boot.name()
        if await self._store.acquire_lease(name, mine, self._ttl):
            return True
        holder = await self._holder(name)
        if holder is not None and self._predecessor(holder):
            log.info("instance %s: taking over from this host's previous run", identity)
            await self._store.release_lease(name, holder.name())
            if await self._store.acquire_lease(name, mine, self._ttl):
                return True
        # A process elsewhere, or alive here: give a dead one elsewhere one TTL to lapse.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ttl
        while loop.time() < deadline:
            await asyncio.sleep(min(0.5, self._ttl / 6))
            if await self._store.acquire_lease(name, mine, self._ttl):
                return True
        return False

    async def _holder(self, name: str) -> Boot | None:
        found = await self._store.lease_holder(name)
        return None if found is None else Boot.parse(found)

    def _predecessor(self, other: Boot) -> bool:
        """A previous run of this process on this host, now dead."""
        if other.host != self.boot.host or other.nonce == self.boot.nonce:
            return False
        return other.pid == self.boot.pid or not self._alive(other.pid)

    async def _renew(self) -> None:
        lost = False
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                ok = await self._store.renew_lease(self._name, self.boot.name(), self._ttl)
                if not ok:
                    ok = await self._store.acquire_lease(self._name, self.boot.name(), self._ttl)
            except Exception as error:
                log.warning("renewing the claim on instance %s failed: %r", self.identity, error)
                continue
            if not ok and not lost:
                log.error(
                    "instance id %s was claimed by another process while this one runs: give "
                    "every process its own identity",
                    self.identity,
                )
            lost = not ok

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        await stop_task(task)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self._store.release_lease(self._name, self.boot.name())
