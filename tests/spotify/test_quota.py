"""The quota governor and development-mode rules, through the real spotipy against the fake."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from core.errors import (
    BudgetRefused,
    NotAllowlisted,
    NotFound,
    OwnerPremiumLapsed,
    PlaylistNotReadable,
    QuotaHeld,
    RateLimited,
)
from core.spotify import CallPriority, SpotifyClient
from core.spotify.errors import QUOTA_HELD
from core.spotify.quota import HOLD as QUOTA_HOLD
from core.timetext import TimedText
from storage import Storage, TokenCipher, open_storage
from tests.fakes.spotify import FakeSpotify
from tests.fakes.spotify_devmode import MAY_NOT_BE_REGISTERED, NOT_REGISTERED
from tests.spotify.conftest import ALICE, WallClock, client_on, config_for, link


async def test_quota_exceeded_holds_every_call_until_retry_after_then_recovers(
    clocked: FakeSpotify, clock: WallClock, links: Storage, clocked_client: SpotifyClient
) -> None:
    fake, client = clocked, clocked_client
    await link(links, fake, ALICE, "alice")
    fake.quota.budget = 3  # Spotify's, not ours: ours is bigger, as on a real account
    fake.quota.retry_after = 14 * 3600  # as reported (13-15 h); the clock is moved by hand
    for _ in range(3):
        await client.devices(ALICE)
    with pytest.raises(QuotaHeld) as raised:
        await client.devices(ALICE)
    assert raised.value.resume_at == clock() + 14 * 3600
    assert "resume at" in raised.value.message
    status = client.quota.status()
    assert status.reason == "quota_exceeded"
    assert status.held_until == raised.value.resume_at
    assert not client.quota.allows(CallPriority.COMMAND)
    assert client.quota.pressure() == 1.0
    assert client.blocked_for == 14 * 3600  # what an engine's `hold` reads

    sent = len(fake.log)
    with pytest.raises(QuotaHeld):  # held here: nothing reaches Spotify, not even a token call
        await client.playback(ALICE)
    with pytest.raises(QuotaHeld):
        await client.track(fake.catalog[0].id)
    clock.advance(14 * 3600 - 1)
    with pytest.raises(QuotaHeld):
        await client.devices(ALICE)
    assert len(fake.log) == sent

    clock.advance(2)
    assert client.quota.allows(CallPriority.COMMAND)
    assert len(await client.devices(ALICE)) == 1
    assert client.quota.status().held_until is None


async def test_budget_pressure_refuses_low_priorities_in_steps(
    fake: FakeSpotify, links: Storage, http: aiohttp.ClientSession
) -> None:
    await link(links, fake, ALICE, "alice")
    client = client_on(links, http, config_for(fake, daily_budget=20))
    quota = client.quota
    try:
        # Budget 20: background stops at 10, drift at 14, safety at 17, end-of-track at 19.
        steps = []
        for _ in range(20):
            steps.append(tuple(quota.allows(p) for p in CallPriority))
            await client.devices(ALICE, priority=CallPriority.COMMAND)
        assert steps[9] == (True, True, True, True, True)
        assert steps[10] == (True, True, True, True, False)
        assert steps[14] == (True, True, True, False, False)
        assert steps[17] == (True, True, False, False, False)
        assert steps[19] == (True, False, False, False, False)
        assert quota.pressure() == 1.0  # past the end-of-track step: only commands left
        assert quota.status().reason == "pressure"
        sent = len(fake.log)
        with pytest.raises(BudgetRefused):
            await client.playback(ALICE, priority=CallPriority.DRIFT)
        with pytest.raises(BudgetRefused):
            await client.devices(ALICE)  # COMMAND too, now that all 20 are spent
        assert len(fake.log) == sent  # refused here, not by Spotify
        assert quota.status().line() == (
            "Spotify calls today: 20 of 20 (saving calls: fewer checks until the budget recovers)"
        )
    finally:
        await client.aclose()


async def test_pressure_rises_with_spending(
    fake: FakeSpotify, links: Storage, http: aiohttp.ClientSession
) -> None:
    await link(links, fake, ALICE, "alice")
    client = client_on(links, http, config_for(fake, daily_budget=100))
    try:
        assert client.quota.pressure() == 0.0
        for _ in range(19):
            await client.devices(ALICE, priority=CallPriority.SAFETY)
        assert client.quota.pressure() == pytest.approx(19 / 95)
        assert client.quota.status().line() == "Spotify calls today: 19 of 100"
    finally:
        await client.aclose()


async def test_the_budget_survives_a_restart(
    fake: FakeSpotify, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    url, cipher = f"sqlite:///{tmp_path}/budget.db", TokenCipher.generate()
    store = await open_storage(url, cipher)
    await link(store, fake, ALICE, "alice")
    client = client_on(store, http, config_for(fake))
    for _ in range(3):
        await client.devices(ALICE)
    await client.aclose()
    await store.aclose()

    store = await open_storage(url, cipher)
    client = client_on(store, http, config_for(fake))
    try:
        assert (await client.quota.refresh()).spent == 3
        await client.devices(ALICE)
        assert client.quota.status().spent == 4
    finally:
        await client.aclose()
        await store.aclose()


# --- development-mode rules --------------------------------------------------------------


async def test_a_user_not_on_the_allowlist_is_told_what_to_ask_for(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    fake.devmode.disallow("alice")
    with pytest.raises(NotAllowlisted) as raised:
        await client.playback(ALICE)
    assert "Users and Access" in raised.value.message
    assert "at most 5" in raised.value.message
    assert fake.requests("/v1/me/player")[-1].response == {
        "error": {"status": 403, "message": "User not registered in the Developer Dashboard"}
    }


def test_the_fake_allowlist_holds_five_accounts_and_refuses_a_sixth_loudly() -> None:
    fake = FakeSpotify()
    for n in range(5):
        fake.add_account(f"user{n}")
    with pytest.raises(ValueError, match="at most 5 users"):
        fake.add_account("user5")  # silently left off before: its calls would 403 later
    assert fake.devmode.allowlists[fake.app.client_id] == {f"user{n}" for n in range(5)}
    fake.add_account("outsider", allowlisted=False)  # on purpose: not on the allowlist
    fake.devmode.enforce_allowlist = False  # a bench with hundreds of accounts says so
    fake.add_account("user6")
    assert "user6" in fake.accounts


@pytest.mark.parametrize("plain", [False, True], ids=["json", "plain-text"])
@pytest.mark.parametrize("wording", [NOT_REGISTERED, MAY_NOT_BE_REGISTERED])
async def test_every_wording_of_the_allowlist_refusal_is_recognised(
    fake: FakeSpotify, links: Storage, client: SpotifyClient, wording: str, plain: bool
) -> None:
    await link(links, fake, ALICE, "alice")
    fake.devmode.disallow("alice")
    fake.devmode.not_registered, fake.devmode.not_registered_plain = wording, plain
    with pytest.raises(NotAllowlisted, match="Users and Access"):
        await client.playback(ALICE)
    answer = fake.requests("/v1/me/player")[-1]
    assert answer.status == 403 and (answer.response is None) is plain


async def test_playlist_reads_keep_allowlist_and_owner_premium_errors(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    own = fake.add_playlist("alice", "Mine", [t.id for t in fake.catalog[:3]])
    fake.devmode.disallow("alice")
    with pytest.raises(NotAllowlisted, match="Users and Access"):
        await client.playlist_tracks(own.id, ALICE)  # not "a playlist you do not own"
    fake.devmode.allow("alice")
    fake.devmode.owner_premium = False
    with pytest.raises(OwnerPremiumLapsed, match="Premium"):
        await client.playlist_tracks(own.id, ALICE)


async def test_the_owners_lapsed_premium_stops_every_call(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    fake.devmode.owner_premium = False
    with pytest.raises(OwnerPremiumLapsed, match="owns its app needs an active Premium"):
        await client.playback(ALICE)
    with pytest.raises(OwnerPremiumLapsed):
        await client.track(fake.catalog[0].id)  # the app token too


async def test_playlists_follow_development_mode_rules(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    ids = [t.id for t in fake.catalog[:3]]
    shared = fake.add_playlist("bob", "Shared", ids, collaborators=["alice"])
    followed = fake.add_playlist("bob", "Bob's", ids, public=True, followers=["alice"])
    editorial = fake.add_playlist("spotify", "Today's Top Hits", ids, public=True)
    assert [t.id for t in await client.playlist_tracks(shared.id, ALICE)] == ids
    with pytest.raises(PlaylistNotReadable, match="own or collaborate"):
        await client.playlist_tracks(followed.id, ALICE)
    with pytest.raises(NotFound, match="Spotify's own playlists"):
        await client.playlist_tracks(editorial.id, ALICE)
    listed = {p.id: p for p in await client.user_playlists(ALICE)}
    assert set(listed) == {shared.id, followed.id}
    assert listed[shared.id].collaborative and listed[shared.id].owner_id == "bob"


# --- player timing and shapes ------------------------------------------------------------


async def test_a_waking_device_answers_202_and_starts_after_its_delay(
    clocked: FakeSpotify, clock: WallClock, links: Storage, clocked_client: SpotifyClient
) -> None:
    fake, client = clocked, clocked_client
    await link(links, fake, ALICE, "alice")
    account = fake.accounts["alice"]
    phone = type(account.devices[0])(id="phone0000", name="Alice's phone", type="Smartphone")
    account.devices.append(phone)
    fake.lag.start_delay, fake.lag.wake_delay, fake.lag.read_lag = 0.15, 0.6, 0.3
    track = fake.catalog[0]

    await client.play(ALICE, track.uri, position_ms=10_000, device_id="phone0000")
    assert fake.requests("/v1/me/player/play")[-1].status == 202
    # Accepted, but not audible yet: the position stands still through the start-up delay.
    assert fake.player("alice").now().position_ms == 10_000
    assert await client.playback(ALICE) is None  # and a read still shows the old state
    clock.advance(0.4)  # past the read lag, inside the start-up delay (0.15 + 0.6)
    assert fake.player("alice").now().position_ms == 10_000
    clock.advance(0.6)
    assert fake.player("alice").now().position_ms == 10_250  # audible since 0.75 s
    playback = await client.playback(ALICE)
    assert playback is not None and playback.track is not None
    assert playback.track.id == track.id
    state = fake.requests("/v1/me/player$")[-1].response
    assert state["context"] is None
    assert state["actions"] == {"disallows": {"pausing": False, "resuming": True}}

    await client.pause(ALICE)  # a command to the active device: 204
    assert fake.requests("/v1/me/player/pause")[-1].status == 204
    stale = await client.playback(ALICE)
    assert stale is not None and stale.is_playing  # read lag: still playing for a moment
    clock.advance(0.29)
    stale = await client.playback(ALICE)
    assert stale is not None and stale.is_playing
    clock.advance(0.02)
    after = await client.playback(ALICE)
    assert after is not None and not after.is_playing


async def test_token_calls_count_and_a_quota_answer_from_the_token_endpoint_holds(
    fake: FakeSpotify, client: SpotifyClient
) -> None:
    await client.track(fake.catalog[0].id)  # a client-credentials token, then the track
    assert client.quota.status().spent == 2
    fake.expire_access_tokens(None)  # the app token now answers 401...
    fake.quota.exhaust()  # ...and the token endpoint QUOTA_EXCEEDED
    with pytest.raises(QuotaHeld):
        await client.track(fake.catalog[1].id)
    assert fake.requests("/api/token")[-1].status == 429
    assert client.quota.status().held_until is not None


# --- what a call spends, and when ---------------------------------------------------------


async def test_a_call_the_limiter_refuses_spends_no_budget(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    fake.fail(429, retry_after=30, path="/v1/me/player/devices", times=1)
    with pytest.raises(RateLimited):
        await client.devices(ALICE)  # went out: counted
    spent, sent = (await client.quota.refresh()).spent, len(fake.log)
    for _ in range(3):
        with pytest.raises(RateLimited):  # held by Retry-After (30 s > max_rate_wait)
            await client.playback(ALICE)
    assert len(fake.log) == sent  # never went out...
    assert (await client.quota.refresh()).spent == spent  # ...and cost nothing


async def test_token_calls_wait_out_a_retry_after_like_any_call(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    stored = await link(links, fake, ALICE, "alice")
    fake.fail(429, retry_after=30, path="/v1/me/player/devices", times=1)
    with pytest.raises(RateLimited):
        await client.devices(ALICE)
    fake.expire_access_tokens("alice")
    with pytest.raises(RateLimited):
        await client.tokens.refresh(ALICE, stored.access_token)
    with pytest.raises(RateLimited):
        await client.track(fake.catalog[0].id)  # the app token as well
    assert fake.count("/api/token") == 0


async def test_a_token_refresh_spends_at_the_priority_of_the_call_that_needs_it(
    fake: FakeSpotify, links: Storage, http: aiohttp.ClientSession
) -> None:
    stored = await link(links, fake, ALICE, "alice")
    client = client_on(links, http, config_for(fake, daily_budget=20))
    try:
        for _ in range(10):  # background work stops at 10 of 20
            await client.devices(ALICE)
        with pytest.raises(BudgetRefused):  # an indexer's refresh may not eat the reserve
            await client.tokens.refresh(ALICE, stored.access_token, CallPriority.BACKGROUND)
        assert fake.count("/api/token") == 0
        refreshed = await client.tokens.refresh(ALICE, stored.access_token, CallPriority.COMMAND)
        assert refreshed.access_token != stored.access_token
        assert client.quota.status().spent == 11
    finally:
        await client.aclose()


async def test_quota_exceeded_names_the_resume_time_on_the_clients_clock(
    clocked: FakeSpotify, clock: WallClock, links: Storage, clocked_client: SpotifyClient
) -> None:
    await link(links, clocked, ALICE, "alice")
    clock.advance(3 * 86_400 + 5 * 3600)  # not today, not this hour: time.time() would show
    clocked.fail(429, retry_after=600, quota=True, path="/v1/me/player/devices", times=1)
    with pytest.raises(QuotaHeld) as raised:
        await clocked_client.devices(ALICE)
    assert raised.value.resume_at == clock() + 600
    assert raised.value.message == TimedText(QUOTA_HELD, clock() + 600, clock())


async def test_quota_exceeded_names_the_later_hold_another_process_stored(
    clocked: FakeSpotify, clock: WallClock, links: Storage, clocked_client: SpotifyClient
) -> None:
    await link(links, clocked, ALICE, "alice")
    await clocked_client.devices(ALICE)  # this process has looked at the hold: none
    later = clock() + 20 * 3600
    await links.set_hold(QUOTA_HOLD, later, "QUOTA_EXCEEDED")  # another process, meanwhile
    clocked.fail(429, retry_after=60, quota=True, path="/v1/me/player/devices", times=1)
    with pytest.raises(QuotaHeld) as raised:
        await clocked_client.devices(ALICE)
    assert raised.value.resume_at == later
    assert raised.value.message == TimedText(QUOTA_HELD, later, clock())
    assert clocked_client.blocked_for == 20 * 3600
