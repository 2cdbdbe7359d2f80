"""The one storage contract, run against SQLite and Redis alike."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from storage import Storage, StorageError, StorageUnavailable, TokenCipher, open_storage
from storage.records import (
    CachedStream,
    Failure,
    HostSnapshot,
    LinkStatus,
    ListenerState,
    ListenerStatus,
    OAuthState,
    PendingLink,
    PendingTake,
    PendingTaker,
    Session,
    SpotifyLink,
    StateCheck,
)
from storage.redis_backend import RedisStorage
from tests.conftest import storage_url_for
from tests.storage.conftest import Opener

NOW = 1_800_000_000.0


def a_link(user_id: int = 1, **changes: object) -> SpotifyLink:
    link = SpotifyLink(
        discord_user_id=user_id,
        spotify_user_id=f"spotify-{user_id}",
        display_name="Ada",
        access_token=f"access-secret-{user_id}",
        refresh_token=f"refresh-secret-{user_id}",
        expires_at=NOW + 3600.5,
        scopes=("user-read-playback-state", "user-modify-playback-state"),
        linked_at=NOW,
    )
    return dataclasses.replace(link, **changes)  # type: ignore[arg-type]


def a_state(state: str = "s" * 43, expires_at: float | None = None) -> OAuthState:
    now = time.time()
    return OAuthState(state, 42, 7, now, now + 600 if expires_at is None else expires_at)


def a_session(guild_id: int = 100, listeners: tuple[int, ...] = ()) -> Session:
    return Session(
        guild_id=guild_id,
        host_user_id=1,
        created_at=NOW,
        channel_id=555,
        listeners={uid: ListenerState(uid, joined_at=NOW) for uid in listeners},
    )


def a_stream(
    track_id: str, last_access: float = NOW, expires_at: float = NOW + 600
) -> CachedStream:
    return CachedStream(
        track_id=track_id,
        video_url=f"http://127.0.0.1/watch?v={track_id}",
        stream_url=f"http://127.0.0.1/audio/{track_id}?expire={int(expires_at)}",
        expires_at=expires_at,
        resolved_at=NOW,
        last_access=last_access,
        title="Artist - Song",
        duration_s=201.5,
        score=0.93,
    )


# --- links -----------------------------------------------------------------------------------


async def test_link_round_trip_update_and_delete(store: Storage) -> None:
    assert await store.get_link(1) is None
    link = a_link()
    await store.put_link(link)
    assert await store.get_link(1) == link

    rotated = dataclasses.replace(link, access_token="new-access", refresh_token="new-refresh")
    await store.put_link(rotated)
    assert await store.get_link(1) == rotated

    assert await store.set_link_status(1, LinkStatus.NEEDS_RELINK)
    got = await store.get_link(1)
    assert got is not None and got.status is LinkStatus.NEEDS_RELINK
    assert not await store.set_link_status(2, LinkStatus.OK)
    assert await store.get_link(2) is None  # a status change never creates a link

    assert await store.delete_link(1)
    assert not await store.delete_link(1)
    assert await store.get_link(1) is None


async def test_token_update_only_reaches_the_same_linking(store: Storage) -> None:
    link = a_link()
    await store.put_link(link)
    await store.set_link_status(1, LinkStatus.PREMIUM_REQUIRED)
    refreshed = dataclasses.replace(
        link, access_token="fresh", refresh_token="rotated", expires_at=NOW + 7200, scopes=("a",)
    )
    assert await store.update_link_tokens(refreshed)
    # Tokens replaced; what the refresh did not know about (the status) is kept.
    assert await store.get_link(1) == dataclasses.replace(
        refreshed, status=LinkStatus.PREMIUM_REQUIRED
    )

    relinked = a_link(linked_at=NOW + 100, access_token="new-account")
    await store.put_link(relinked)
    assert not await store.update_link_tokens(refreshed)  # a refresh of the old linking
    assert not await store.set_link_status(1, LinkStatus.NEEDS_RELINK, linked_at=NOW)
    assert await store.get_link(1) == relinked
    assert await store.set_link_status(1, LinkStatus.NEEDS_RELINK, linked_at=NOW + 100)

    await store.delete_link(1)
    assert not await store.update_link_tokens(refreshed)  # never resurrects an unlinked user
    assert await store.get_link(1) is None


# --- OAuth states ----------------------------------------------------------------------------


async def test_oauth_state_is_single_use(store: Storage) -> None:
    state = a_state()
    await store.put_oauth_state(state)
    first = await store.consume_oauth_state(state.state, time.time())
    assert first.check is StateCheck.OK
    assert first.record == state
    again = await store.consume_oauth_state(state.state, time.time())
    assert again.check is StateCheck.USED and again.record is None


async def test_oauth_state_unknown_and_expired(store: Storage) -> None:
    assert (await store.consume_oauth_state("forged", time.time())).check is StateCheck.UNKNOWN
    state = a_state("x" * 43, expires_at=time.time() - 1)
    await store.put_oauth_state(state)
    expired = await store.consume_oauth_state(state.state, time.time())
    assert expired.check is StateCheck.EXPIRED
    assert expired.record is not None and expired.record.discord_user_id == 42
    # Expired states are burnt too: a second try reads as used, not as a fresh chance.
    assert (await store.consume_oauth_state(state.state, time.time())).check is StateCheck.USED


async def test_oauth_state_concurrent_consumers_exactly_one_wins(open_store: Opener) -> None:
    # Separate connections, like separate requests or processes racing for one state.
    stores = [await open_store() for _ in range(4)]
    for n in range(5):
        state = a_state(f"race-{n}-" + "y" * 30)
        await stores[0].put_oauth_state(state)
        results = await asyncio.gather(
            *(s.consume_oauth_state(state.state, time.time()) for s in stores for _ in range(5))
        )
        checks = [r.check for r in results]
        assert checks.count(StateCheck.OK) == 1, checks
        assert checks.count(StateCheck.USED) == len(checks) - 1


async def test_oauth_state_hash_only_at_rest(
    store: Storage, backend: str, storage_url: str
) -> None:
    state = a_state("bearer-secret-" + "z" * 30)
    await store.put_oauth_state(state)
    assert state.state.encode() not in await raw_dump(backend, storage_url)


# --- pending links ---------------------------------------------------------------------------


def a_pending(state: str = "p" * 43, user_id: int = 1, expires_in: float = 600) -> PendingLink:
    return PendingLink(
        state=state,
        form_token="form-" + state,
        expires_at=time.time() + expires_in,
        link=a_link(user_id),
    )


async def test_pending_link_round_trip_and_single_use(store: Storage) -> None:
    pending = a_pending()
    now = time.time()
    await store.put_pending_link(pending, now, 10)
    assert (await store.get_pending_link(pending.state, now)).pending == pending
    assert (await store.get_pending_link("other", now)) == PendingTake(None)
    taken = await store.take_pending_link(pending.state, now, PendingTaker.CANCEL)
    assert taken.pending == pending
    # Used up: later presses learn who took it, and get no tokens.
    again = await store.take_pending_link(pending.state, now, PendingTaker.LINK)
    assert again == PendingTake(None, PendingTaker.CANCEL)
    assert await store.get_pending_link(pending.state, now) == PendingTake(
        None, PendingTaker.CANCEL
    )
    # An update never brings a taken one back; a put (storage failed while linking) does.
    assert not await store.update_pending_link(dataclasses.replace(pending, vouch="v"), now)
    await store.put_pending_link(pending, now, 10)
    assert (await store.get_pending_link(pending.state, now)).pending == pending


async def test_pending_link_update_and_expiry(store: Storage) -> None:
    pending = a_pending()
    now = time.time()
    await store.put_pending_link(pending, now, 10)
    vouched = dataclasses.replace(pending, vouch="discord-state")
    assert await store.update_pending_link(vouched, now)
    assert (await store.get_pending_link(pending.state, now)).pending == vouched
    later = pending.expires_at + 1
    assert await store.get_pending_link(pending.state, later) == PendingTake(None)
    assert await store.take_pending_link(pending.state, later, PendingTaker.LINK) == PendingTake(
        None
    )
    assert not await store.update_pending_link(vouched, later)


async def test_pending_links_beyond_the_maximum_drop_the_oldest(store: Storage) -> None:
    now = time.time()
    pendings = [a_pending(f"state-{n}-" + "q" * 30, expires_in=600 + n) for n in range(5)]
    for pending in pendings:
        await store.put_pending_link(pending, now, 3)
    found = [(await store.get_pending_link(p.state, now)).pending for p in pendings]
    assert found == [None, None, *pendings[2:]]
    # Expired ones go first and make room.
    await store.put_pending_link(a_pending("late-" + "q" * 30), pendings[-1].expires_at + 1, 3)
    left = [(await store.get_pending_link(p.state, now)).pending for p in pendings]
    assert left == [None] * 5


async def test_pending_link_concurrent_takers_exactly_one_wins(open_store: Opener) -> None:
    stores = [await open_store() for _ in range(4)]
    for n in range(5):
        pending = a_pending(f"race-{n}-" + "r" * 30)
        now = time.time()
        await stores[0].put_pending_link(pending, now, 100)
        takers = [PendingTaker.LINK, PendingTaker.CANCEL] * 10
        results = await asyncio.gather(
            *(
                stores[i % 4].take_pending_link(pending.state, now, by)
                for i, by in enumerate(takers)
            )
        )
        winners = [r for r in results if r.pending is not None]
        assert len(winners) == 1, results
        first = takers[results.index(winners[0])]
        assert all(r.taken_by is first for r in results if r.pending is None)


async def test_pending_link_encrypted_and_hashed_at_rest(
    store: Storage, backend: str, storage_url: str
) -> None:
    pending = a_pending("bearer-secret-" + "z" * 30)
    await store.put_pending_link(pending, time.time(), 10)
    dump = await raw_dump(backend, storage_url)
    for secret in (pending.state, pending.form_token, pending.link.access_token):
        assert secret.encode() not in dump, secret
    assert pending.link.refresh_token.encode() not in dump
    await store.take_pending_link(pending.state, time.time(), PendingTaker.LINK)
    assert (await store.get_pending_link(pending.state, time.time())).taken_by is PendingTaker.LINK


# --- sessions --------------------------------------------------------------------------------


async def test_session_round_trip_and_one_per_guild(store: Storage) -> None:
    session = a_session(listeners=(2, 3))
    assert await store.create_session(session)
    assert await store.get_session(100) == session
    assert not await store.create_session(dataclasses.replace(session, host_user_id=9))
    got = await store.get_session(100)
    assert got is not None and got.host_user_id == 1  # the losing create wrote nothing
    assert await store.get_session(101) is None


async def test_session_concurrent_creates_exactly_one_wins(store: Storage) -> None:
    results = await asyncio.gather(
        *(store.create_session(dataclasses.replace(a_session(), host_user_id=h)) for h in range(10))
    )
    assert results.count(True) == 1


async def test_session_update_fields(store: Storage) -> None:
    await store.create_session(a_session())
    snapshot = HostSnapshot("4uLU6hMCjMI75M1A2tKUQC", 61_000, True, NOW + 5.25, 200_000, "dev-1")
    assert await store.update_session(
        100,
        {"host_user_id": 2, "snapshot": snapshot, "status_message_id": 777, "host_active_at": NOW},
    )
    got = await store.get_session(100)
    assert got is not None
    assert (got.host_user_id, got.snapshot, got.status_message_id) == (2, snapshot, 777)
    assert got.host_active_at == NOW and got.channel_id == 555

    assert await store.update_session(100, {"snapshot": None, "channel_id": None})
    got = await store.get_session(100)
    assert got is not None and got.snapshot is None and got.channel_id is None
    assert not await store.update_session(999, {"host_user_id": 3})
    with pytest.raises(StorageError, match="not session fields"):
        await store.update_session(100, {"guild_id; DROP TABLE": 1})  # type: ignore[typeddict-unknown-key]
    assert await store.get_session(999) is None  # never resurrected by an update


async def test_listeners_put_remove_and_cascade(store: Storage) -> None:
    await store.create_session(a_session(listeners=(2,)))
    detached = ListenerState(
        3, ListenerStatus.DETACHED, NOW, NOW + 1, "dev-3", "paused on their own"
    )
    assert await store.put_listener(100, detached)
    assert await store.put_listener(
        100, dataclasses.replace(detached, status=ListenerStatus.NO_DEVICE)
    )
    got = await store.get_session(100)
    assert got is not None
    assert sorted(got.listeners) == [2, 3]
    assert got.listeners[3].status is ListenerStatus.NO_DEVICE
    assert got.listeners[3].detail == "paused on their own"

    assert await store.remove_listener(100, 2)
    assert not await store.remove_listener(100, 2)
    assert not await store.put_listener(555, detached)  # no such session: refused
    assert await store.get_session(555) is None

    assert await store.delete_session(100)
    assert not await store.delete_session(100)
    assert await store.create_session(a_session())
    fresh = await store.get_session(100)
    assert fresh is not None and fresh.listeners == {}  # old listeners went with the session


async def test_update_listener_never_adds_one_back(store: Storage) -> None:
    await store.create_session(a_session(listeners=(2,)))
    marked = ListenerState(2, ListenerStatus.NO_DEVICE, NOW, NOW + 1, None, "open Spotify")
    assert await store.update_listener(100, marked)
    got = await store.get_session(100)
    assert got is not None and got.listeners[2] == marked

    assert await store.remove_listener(100, 2)  # they left
    assert not await store.update_listener(100, marked)  # a late status write
    assert not await store.update_listener(555, marked)  # no such session
    got = await store.get_session(100)
    assert got is not None and got.listeners == {}


async def test_list_sessions(store: Storage) -> None:
    for guild_id in (3, 1, 2):
        await store.create_session(a_session(guild_id, listeners=(guild_id * 10,)))
    await store.delete_session(2)
    sessions = await store.list_sessions()
    assert [s.guild_id for s in sessions] == [1, 3]
    assert [list(s.listeners) for s in sessions] == [[10], [30]]


# --- stream cache ----------------------------------------------------------------------------


async def test_stream_round_trip_replace_delete(store: Storage) -> None:
    entry = a_stream("4uLU6hMCjMI75M1A2tKUQC")
    await store.put_stream(entry)
    assert await store.get_stream(entry.track_id) == entry
    newer = dataclasses.replace(entry, stream_url="http://127.0.0.1/new", expires_at=NOW + 900)
    await store.put_stream(newer)
    assert await store.get_stream(entry.track_id) == newer
    assert await store.count_streams() == 1
    # The headers the URL was extracted with (the relay sends them again) round-trip too.
    headed = dataclasses.replace(
        newer, http_headers=(("User-Agent", "Mozilla/5.0 (X11) é"), ("Accept", "*/*"))
    )
    await store.put_stream(headed)
    assert await store.get_stream(entry.track_id) == headed
    assert await store.delete_stream(entry.track_id)
    assert not await store.delete_stream(entry.track_id)
    assert await store.get_stream(entry.track_id) is None
    assert await store.count_streams() == 0


async def test_a_burst_of_concurrent_calls_waits_instead_of_failing(store: Storage) -> None:
    # 500 cache lookups at once (a popular track going cold) is more than any connection pool.
    await store.put_stream(a_stream("hot"))
    found = await asyncio.gather(*(store.get_stream("hot") for _ in range(500)))
    assert all(entry == a_stream("hot") for entry in found)


async def test_lru_eviction_follows_last_access(open_store: Opener) -> None:
    store = await open_store(max_streams=3)
    for n, track in enumerate("abc"):
        await store.put_stream(a_stream(track, last_access=NOW + n))
    await store.touch_streams({"a": NOW + 10})  # a is now the most recently used
    await store.put_stream(a_stream("d", last_access=NOW + 11))
    assert await store.count_streams() == 3
    assert await store.get_stream("b") is None  # least recently accessed went first
    await store.put_stream(a_stream("e", last_access=NOW + 12))
    assert await store.get_stream("c") is None
    remaining = [t for t in "abcde" if await store.get_stream(t) is not None]
    assert remaining == ["a", "d", "e"]


async def test_touch_never_moves_back_or_resurrects(store: Storage) -> None:
    await store.put_stream(a_stream("a", last_access=NOW + 50))
    await store.touch_streams({"a": NOW + 10, "gone": NOW + 99})
    got = await store.get_stream("a")
    assert got is not None and got.last_access == NOW + 50
    assert await store.get_stream("gone") is None
    await store.touch_streams({"a": NOW + 60})
    got = await store.get_stream("a")
    assert got is not None and got.last_access == NOW + 60


async def test_streams_to_refresh(store: Storage) -> None:
    await store.put_stream(a_stream("soon-used", last_access=NOW, expires_at=NOW + 60))
    await store.put_stream(a_stream("sooner-used", last_access=NOW, expires_at=NOW + 30))
    await store.put_stream(a_stream("soon-stale", last_access=NOW - 7200, expires_at=NOW + 60))
    await store.put_stream(a_stream("later", last_access=NOW, expires_at=NOW + 6000))
    due = await store.streams_to_refresh(NOW + 120, NOW - 3600, limit=10)
    assert [e.track_id for e in due] == ["sooner-used", "soon-used"]
    assert [e.track_id for e in await store.streams_to_refresh(NOW + 120, NOW - 3600, 1)] == [
        "sooner-used"
    ]


async def test_negative_cache(store: Storage) -> None:
    now = time.time()
    await store.put_failure(Failure("t1", "no match", now + 60))
    assert await store.get_failure("t1", now) == Failure("t1", "no match", now + 60)
    assert await store.get_failure("t1", now + 61) is None
    await store.delete_failure("t1")
    assert await store.get_failure("t1", now) is None


async def test_negative_cache_expires_in_real_time(store: Storage) -> None:
    await store.put_failure(Failure("t2", "youtube down", time.time() + 0.2))
    assert await store.get_failure("t2", time.time()) is not None
    await asyncio.sleep(0.3)
    assert await store.get_failure("t2", time.time()) is None


# --- leases ----------------------------------------------------------------------------------


async def test_lease_single_holder_renew_release(store: Storage) -> None:
    assert await store.acquire_lease("guild:1", "proc-a", 5)
    assert await store.acquire_lease("guild:1", "proc-a", 5)  # re-acquire by the holder
    assert not await store.acquire_lease("guild:1", "proc-b", 5)
    assert await store.renew_lease("guild:1", "proc-a", 5)
    assert not await store.renew_lease("guild:1", "proc-b", 5)
    assert not await store.release_lease("guild:1", "proc-b")
    assert await store.lease_holder("guild:1") == "proc-a"
    assert await store.release_lease("guild:1", "proc-a")
    assert await store.lease_holder("guild:1") is None
    assert await store.acquire_lease("guild:1", "proc-b", 5)


async def test_lease_expires_when_not_renewed(store: Storage) -> None:
    assert await store.acquire_lease("guild:2", "proc-a", 0.15)
    assert not await store.acquire_lease("guild:2", "proc-b", 5)
    await asyncio.sleep(0.25)
    assert not await store.renew_lease("guild:2", "proc-a", 5)  # too late: it was lost
    assert await store.lease_holder("guild:2") is None
    assert await store.acquire_lease("guild:2", "proc-b", 5)


async def test_lease_concurrent_acquire_exactly_one_wins(open_store: Opener) -> None:
    stores = [await open_store() for _ in range(3)]
    results = await asyncio.gather(
        *(
            s.acquire_lease("guild:3", f"proc-{i}-{j}", 5)
            for i, s in enumerate(stores)
            for j in range(4)
        )
    )
    assert results.count(True) == 1


# --- listen-page audience (branch scale2) ----------------------------------------------------


async def test_audience_sums_the_processes_and_forgets_one_at_zero(store: Storage) -> None:
    assert await store.get_audience(7) == 0
    await store.set_audience(7, "web-a", 3, 30)
    await store.set_audience(7, "web-b", 2, 30)
    await store.set_audience(8, "web-a", 5, 30)
    assert await store.get_audience(7) == 5
    await store.set_audience(7, "web-a", 1, 30)  # a count replaces that process's last one
    assert await store.get_audience(7) == 3
    await store.set_audience(7, "web-b", 0, 30)
    assert await store.get_audience(7) == 1
    assert await store.get_audience(8) == 5


async def test_audience_of_a_process_that_stops_writing_lapses(store: Storage) -> None:
    await store.set_audience(9, "died", 4, 0.15)
    await store.set_audience(9, "alive", 1, 30)
    assert await store.get_audience(9) == 5
    await asyncio.sleep(0.25)
    assert await store.get_audience(9) == 1


# --- counters and holds (the Spotify call budget, branch quota) ------------------------------


async def test_counter_counts_a_rolling_window_and_refuses_past_its_limit(store: Storage) -> None:
    for n in range(3):
        hit = await store.hit_counter("spotify:30s", NOW + n, 30, limit=3)
        assert (hit.recorded, hit.count, hit.oldest) == (True, n + 1, NOW)
    refused = await store.hit_counter("spotify:30s", NOW + 3, 30, limit=3)
    assert (refused.recorded, refused.count, refused.oldest) == (False, 3, NOW)
    # The first hit leaves the window at NOW + 30: one slot again.
    assert (await store.hit_counter("spotify:30s", NOW + 30, 30, limit=3)).recorded
    look = await store.count_counter("spotify:30s", NOW + 30.5, 30)
    assert (look.recorded, look.count, look.oldest) == (False, 3, NOW + 1)
    unlimited = await store.hit_counter("spotify:30s", NOW + 31, 30)
    assert unlimited.recorded and unlimited.count == 3  # NOW + 1 left, NOW + 31 came
    assert (await store.count_counter("other", NOW, 30)).count == 0


async def test_counter_concurrent_hits_never_over_admit(open_store: Opener) -> None:
    stores = [await open_store() for _ in range(2)]
    now = time.time()
    hits = await asyncio.gather(
        *(s.hit_counter("budget", now, 60, limit=7) for s in stores for _ in range(10))
    )
    assert sum(h.recorded for h in hits) == 7
    assert (await stores[0].count_counter("budget", now, 60)).count == 7


async def test_counter_concurrent_hits_on_one_store_count_in_turn(store: Storage) -> None:
    # SQLite writes concurrent hits in one transaction (group commit): each must still be
    # counted in turn, seeing the hits admitted before it, never a shared count.
    now = time.time()
    hits = await asyncio.gather(*(store.hit_counter("burst", now, 60, limit=20) for _ in range(50)))
    assert sorted(h.count for h in hits if h.recorded) == list(range(1, 21))
    assert all(h.count == 20 for h in hits if not h.recorded)
    assert (await store.count_counter("burst", now, 60)).count == 20


async def test_hold_keeps_the_later_one_and_ends(store: Storage) -> None:
    # Real time, not NOW: Redis expires the key at `until` (PEXPIREAT), so a fixed epoch would
    # be in the past, and the hold gone at once, from the day the calendar passes it.
    now = time.time()
    assert await store.get_hold("spotify", now) is None
    assert (await store.set_hold("spotify", now + 100, "quota")).until == now + 100
    kept = await store.set_hold("spotify", now + 5, "rate_limit")  # earlier: the later stays
    assert (kept.until, kept.reason) == (now + 100, "quota")
    held = await store.get_hold("spotify", now + 50)
    assert held is not None and held.reason == "quota"
    assert await store.get_hold("spotify", now + 100) is None


async def test_a_store_says_whether_other_processes_share_it(store: Storage) -> None:
    # Both: Redis by design, SQLite because the indexer runs beside the bot on the same file.
    assert store.shared_across_processes is True


async def test_named_lock_spans_connections_and_a_dead_holder_frees_it(
    open_store: Opener,
) -> None:
    """Two connections, as the bot and `python -m bot index` beside it would hold them."""
    first, second = await open_store(), await open_store()
    async with first.named_lock("refresh:1", 30, 1):
        with pytest.raises(StorageUnavailable, match="busy"):
            async with second.named_lock("refresh:1", 30, 0.3):
                pass
        async with second.named_lock("refresh:2", 30, 0.3):  # another name is free
            pass
    async with second.named_lock("refresh:1", 30, 1):  # released: free at once
        pass

    # A holder that stops renewing (crashed, or slower than its ttl) loses the lock at the
    # ttl; its late release must not free the lock the next holder has taken.
    entered = asyncio.Event()

    async def slow_holder() -> None:
        async with first.named_lock("refresh:3", 0.5, 1):
            entered.set()
            await asyncio.sleep(1.5)

    holder = asyncio.create_task(slow_holder())
    await entered.wait()
    async with second.named_lock("refresh:3", 30, 10):
        await holder  # the slow holder's release runs while `second` holds it
        with pytest.raises(StorageUnavailable):
            async with first.named_lock("refresh:3", 30, 0.3):
                pass


async def test_named_lock_admits_one_holder_at_a_time(open_store: Opener) -> None:
    stores = [await open_store() for _ in range(2)]
    inside, most = 0, 0

    async def critical(store: Storage) -> None:
        nonlocal inside, most
        async with store.named_lock("one", 30, 20):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(critical(s) for s in stores for _ in range(5)))
    assert most == 1


async def test_counters_and_holds_survive_reopen(open_store: Opener) -> None:
    now = time.time()
    first = await open_store()
    await first.hit_counter("day", now, 86_400)
    await first.hit_counter("day", now + 1, 86_400)
    await first.set_hold("spotify", now + 3600, "quota")
    await first.aclose()
    second = await open_store()
    assert (await second.count_counter("day", now + 2, 86_400)).count == 2
    held = await second.get_hold("spotify", now + 2)
    assert held is not None and held.until == now + 3600


# --- durability and secrets ------------------------------------------------------------------


async def test_everything_survives_reopen(open_store: Opener) -> None:
    first = await open_store()
    await first.put_link(a_link())
    await first.create_session(a_session(listeners=(5,)))
    await first.put_stream(a_stream("a"))
    await first.aclose()
    second = await open_store()
    assert await second.get_link(1) == a_link()
    assert await second.get_session(100) == a_session(listeners=(5,))
    assert await second.get_stream("a") == a_stream("a")


async def test_tokens_are_encrypted_at_rest(store: Storage, backend: str, storage_url: str) -> None:
    await store.put_link(a_link(7))
    raw = await raw_dump(backend, storage_url)
    assert b"spotify-7" in raw  # the dump does see the stored record...
    assert b"access-secret-7" not in raw  # ...but never the tokens in clear
    assert b"refresh-secret-7" not in raw


async def test_operations_after_close_fail_clearly(open_store: Opener) -> None:
    store = await open_store()
    await store.aclose()
    with pytest.raises(StorageUnavailable):
        await store.get_link(1)


async def raw_dump(backend: str, storage_url: str) -> bytes:
    """Every byte the backend holds: the SQLite files, or every Redis key and value."""
    if backend == "sqlite":
        path = Path(storage_url.removeprefix("sqlite:///"))
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    client = aioredis.from_url(storage_url.split("?", maxsplit=1)[0])
    try:
        chunks: list[bytes] = []
        async for key in client.scan_iter():
            chunks.append(key)
            kind = await client.type(key)
            if kind == b"hash":
                for k, v in (await client.hgetall(key)).items():
                    chunks += [k, v]
            elif kind == b"string":
                chunks.append(await client.get(key) or b"")
        return b"\n".join(chunks)
    finally:
        await client.aclose()


async def test_session_found_by_listen_token(store: Storage) -> None:
    await store.create_session(dataclasses.replace(a_session(100), listen_token="tok-a"))
    await store.create_session(a_session(200))
    assert await store.update_session(200, {"listen_token": "tok-b"})
    found = await store.get_session_by_listen_token("tok-b")
    assert found is not None and found.guild_id == 200
    found = await store.get_session_by_listen_token("tok-a")
    assert found is not None and found.guild_id == 100
    assert await store.get_session_by_listen_token("tok-c") is None
    assert await store.delete_session(200)
    assert await store.get_session_by_listen_token("tok-b") is None
    # A session made again for the guild does not answer to the old token.
    await store.create_session(a_session(200))
    assert await store.get_session_by_listen_token("tok-b") is None


async def test_redis_listen_token_index_follows_the_session(
    cipher: TokenCipher, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Redis only (SQLite finds a token by its column's index): the index is written in the
    session's own script, so a replaced or deleted session's token leaves it at once."""
    store = await open_storage(storage_url_for("redis", tmp_path, request), cipher, max_streams=10)
    assert isinstance(store, RedisStorage)
    try:
        await _listen_token_index(store)
    finally:
        await store.aclose()


async def _listen_token_index(store: RedisStorage) -> None:
    index = store._k("listen_tokens")
    await store.create_session(dataclasses.replace(a_session(100), listen_token="tok-a"))
    assert await store._r.hgetall(index) == {"tok-a": "100"}
    assert await store.update_session(100, {"listen_token": "tok-b"})
    assert await store._r.hgetall(index) == {"tok-b": "100"}
    assert await store.update_session(100, {"listen_token": None})
    assert await store._r.hgetall(index) == {}
    assert await store.update_session(100, {"listen_token": "tok-c"})
    assert await store.delete_session(100)
    assert await store._r.hgetall(index) == {}
    # No session, no index entry: an update of a missing session writes nothing.
    assert not await store.update_session(100, {"listen_token": "tok-d"})
    assert await store._r.hgetall(index) == {}


async def _cancel_after(steps: int, write: asyncio.Future[object] | asyncio.Task[object]) -> None:
    for _ in range(steps):
        if write.done():
            break
        await asyncio.sleep(0)
    write.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await write


async def test_writes_cancelled_at_any_step_are_whole_or_absent(
    open_store: Opener,
) -> None:
    """A cancel may land at any await of a multi-step write (SQLite: BEGIN, the statements,
    COMMIT, each on aiosqlite's thread; Redis: a script or MULTI/EXEC): afterwards the write
    is either all there or not at all, the next write works, and it survives a reopen."""
    store = await open_store()
    listeners = (11, 12, 13)
    for steps in range(40):
        guild = 1000 + steps
        task = asyncio.ensure_future(store.create_session(a_session(guild, listeners)))
        await _cancel_after(steps, task)
        got = await store.get_session(guild)
        assert got is None or set(got.listeners) == set(listeners), steps
        # The next transaction and a plain write both work and are kept.
        assert await store.create_session(a_session(5000 + steps, (1,))) is True
        await store.put_link(a_link(steps + 1))
        entry = a_stream(f"{steps:022d}")
        task = asyncio.ensure_future(store.put_stream(entry))
        await _cancel_after(steps, task)
        cached = await store.get_stream(entry.track_id)
        assert cached is None or cached == entry, steps
    reopened = await open_store()
    for steps in range(40):
        kept = await reopened.get_session(5000 + steps)
        assert kept is not None and set(kept.listeners) == {1}
        assert await reopened.get_link(steps + 1) is not None


async def test_a_released_lease_is_announced_to_waiters(store: Storage) -> None:
    releases = store.lease_releases()
    first = asyncio.ensure_future(anext(releases))
    await asyncio.sleep(0.2)  # subscribed before the release (pub/sub keeps no history)
    assert await store.acquire_lease("guild:3", "proc-a", 5)
    assert not await store.release_lease("guild:3", "proc-b")  # not theirs: nothing announced
    assert await store.release_lease("guild:3", "proc-a")
    try:
        async with asyncio.timeout(2):
            assert await first == "guild:3"
    finally:
        first.cancel()
        await releases.aclose()


async def test_a_lease_is_renewed_by_its_holder_and_lapses_for_others(store: Storage) -> None:
    assert await store.acquire_lease("guild:4", "proc-a", 0.3)
    for _ in range(3):  # renewals keep it past its first TTL
        await asyncio.sleep(0.15)
        assert await store.renew_lease("guild:4", "proc-a", 0.3)
        assert not await store.acquire_lease("guild:4", "proc-b", 0.3)


async def test_a_store_says_whether_other_processes_share_its_leases(
    store: Storage, backend: str
) -> None:
    # A loop on a store nobody else uses keeps syncing when a lease write fails (SQLite);
    # on Redis a lease it cannot renew lapses, as another process may take the guild.
    assert store.leases_shared is (backend == "redis")


async def test_a_task_cancelled_during_a_call_ends_wherever_the_cancel_lands(
    store: Storage,
) -> None:
    """A loop cancelled while it reads storage ends, whichever moment of the call the cancel
    lands in. On Python 3.11 redis-py's `asyncio.wait_for` dropped a cancel that came in the
    loop turn its reply did (CPython gh-86296): the loop ran on, and a sync supervisor's or a
    lease's `aclose` waited for it forever (the lease tests' hang on a loaded machine)."""
    assert await store.create_session(a_session(100))
    for attempt in range(100):

        async def reads() -> None:
            while True:
                await store.list_sessions()

        task = asyncio.create_task(reads())
        await asyncio.sleep((attempt % 20) / 4000)  # 0 to 5 ms: many moments of a call
        task.cancel()
        await asyncio.wait([task], timeout=2)
        lost = not task.done()
        while not task.done():  # (stop it for good before failing)
            task.cancel()
            await asyncio.wait([task], timeout=0.1)
        assert not lost, f"attempt {attempt}: the cancel was lost, the loop ran on"
        assert task.cancelled(), task
