"""Instance identity: the slot files in the data folder, and the claim in the shared store
that keeps two live processes from sharing one identity (both would command a guild)."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import instance
from core.sync.identity import Boot, InstanceClaim
from storage import Storage, TokenCipher, open_storage


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[Storage]:
    store = await open_storage(f"{redis_url}?prefix=id-{uuid.uuid4().hex}", TokenCipher.generate())
    try:
        yield store
    finally:
        await store.aclose()


def boot(host: str = "here", pid: int = 4242) -> Boot:
    return Boot(host, pid, uuid.uuid4().hex[:12])


async def test_two_live_claimers_of_one_id_never_share_it(
    redis_store: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    first = InstanceClaim(redis_store, boot=boot(pid=1001), ttl_s=0.6, alive=lambda pid: True)
    second = InstanceClaim(redis_store, boot=boot(pid=1002), ttl_s=0.6, alive=lambda pid: True)
    assert await first.claim("shared") == "shared"
    with caplog.at_level(logging.ERROR):
        other = await second.claim("shared")  # the first keeps renewing meanwhile
    assert other != "shared"
    assert any(r.levelno == logging.ERROR and "in use" in r.message for r in caplog.records)
    await first.aclose()
    await second.aclose()


async def test_a_restart_on_this_host_takes_its_identity_back_at_once(
    redis_store: Storage,
) -> None:
    dead = InstanceClaim(redis_store, boot=boot(pid=1001), ttl_s=60)
    assert await dead.claim("mine") == "mine"
    dead._task.cancel()  # type: ignore[union-attr]  # kill -9: it neither renews nor releases
    restarted = InstanceClaim(redis_store, boot=boot(pid=1002), ttl_s=60, alive=lambda pid: False)
    assert await restarted.claim("mine") == "mine"  # within the TTL: no wait
    await restarted.aclose()


async def test_a_dead_claimer_elsewhere_is_replaced_after_its_claim_lapses(
    redis_store: Storage,
) -> None:
    dead = InstanceClaim(redis_store, boot=boot(host="there"), ttl_s=0.6)
    assert await dead.claim("moved") == "moved"
    dead._task.cancel()  # type: ignore[union-attr]
    elsewhere = InstanceClaim(redis_store, boot=boot(host="here"), ttl_s=0.6)
    assert await elsewhere.claim("moved") == "moved"
    await elsewhere.aclose()


async def test_sqlite_needs_no_claim(tmp_path: Path) -> None:
    store = await open_storage(f"sqlite:///{tmp_path}/db.sqlite", TokenCipher.generate())
    try:
        assert await InstanceClaim(store).claim("solo") == "solo"
    finally:
        await store.aclose()


# --- the slots in the data folder -------------------------------------------------------------


def test_a_restart_gets_its_slots_id_and_concurrent_processes_get_others(tmp_path: Path) -> None:
    held_before = list(instance._held)
    try:
        first = instance.instance_id(tmp_path)
        second = instance.instance_id(tmp_path)  # a second live holder: the next slot
        assert first != second
        assert (tmp_path / "instance-0.id").read_text().strip() == first
        for lock in instance._held[len(held_before) :]:
            lock.close()  # both "processes" end
        del instance._held[len(held_before) :]
        assert instance.instance_id(tmp_path) == first  # restarted: the first free slot's id
    finally:
        for lock in instance._held[len(held_before) :]:
            lock.close()
        del instance._held[len(held_before) :]


def test_a_configured_id_wins_and_an_unusable_folder_falls_back_to_a_random_one(
    tmp_path: Path,
) -> None:
    assert instance.instance_id(tmp_path, "configured") == "configured"
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    fallback = instance.instance_id(blocker / "data")
    assert fallback.startswith(f"{os.getpid()}-")
    assert fallback != instance.instance_id(blocker / "data")
