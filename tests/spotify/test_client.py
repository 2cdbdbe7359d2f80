"""SpotifyClient with the real spotipy against the fake: tokens, errors, player calls, paging."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.errors import (
    NoActiveDevice,
    NotFound,
    NotLinked,
    PlaylistNotReadable,
    PremiumRequired,
    RateLimited,
    RestrictionViolated,
    SpotifyError,
    TokenExpired,
    TokenRevoked,
    Upstream,
)
from core.spotify import SpotifyClient
from storage import Storage
from storage.records import LinkStatus
from tests.fakes.spotify import FakeSpotify
from tests.spotify.conftest import ALICE, BOB, CAROL, WallClock, link

# --- tokens ------------------------------------------------------------------------------


async def test_401_from_twenty_concurrent_callers_makes_exactly_one_refresh(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    before = await link(links, fake, ALICE, "alice")
    fake.expire_access_tokens("alice")  # stored expires_at still says fine: only a 401 tells

    results = await asyncio.gather(*(client.devices(ALICE) for _ in range(20)))

    assert all(len(devices) == 1 for devices in results)
    assert fake.count("/api/token") == 1
    assert len([r for r in fake.requests("/v1/me/player/devices") if r.status == 401]) == 20
    after = await links.get_link(ALICE)
    assert after is not None
    assert after.access_token != before.access_token
    assert after.refresh_token == before.refresh_token  # not rotated: kept


async def test_token_expiring_soon_is_refreshed_once_before_the_call(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice", expires_at=time.time() + 10)
    await asyncio.gather(*(client.profile(ALICE) for _ in range(5)))
    assert fake.count("/api/token") == 1
    assert all(r.status == 200 for r in fake.requests("/v1/me"))


async def test_unlink_while_a_refresh_is_out_stays_unlinked(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice", expires_at=time.time() + 10)
    fake.hang(path="/api/token", seconds=0.5)
    call = asyncio.create_task(client.profile(ALICE))
    for _ in range(500):  # until the refresh has reached Spotify
        if fake.count("/api/token"):
            break
        await asyncio.sleep(0.01)
    assert await links.delete_link(ALICE)  # /unlink meanwhile

    with pytest.raises(NotLinked):
        await call
    assert await links.get_link(ALICE) is None  # the late refresh did not bring it back


async def test_rotated_refresh_token_is_stored_and_used_next_time(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    fake.rotate_refresh_tokens = True  # and the old one is revoked on rotation
    first = await link(links, fake, ALICE, "alice")
    fake.expire_access_tokens("alice")
    await client.profile(ALICE)
    second = await links.get_link(ALICE)
    assert second is not None
    assert second.refresh_token != first.refresh_token

    fake.expire_access_tokens("alice")
    await client.profile(ALICE)  # would be invalid_grant with the old refresh token
    third = await links.get_link(ALICE)
    assert third is not None
    assert third.refresh_token != second.refresh_token
    assert third.status == LinkStatus.OK


async def test_a_refresh_cancelled_after_spotify_rotated_the_token_still_stores_it(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    stored = await link(links, fake, ALICE, "alice", expires_at=time.time() - 1)
    fake.rotate_refresh_tokens = True
    fake.set_latency(2.0)  # Spotify rotates 1 s in; its answer reaches us 1 s later
    call = asyncio.create_task(client.devices(ALICE))
    async with asyncio.timeout(10):
        while fake.refresh_token_valid(stored.refresh_token):  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.01)
    call.cancel()  # e.g. a sync round's timeout: the old token is dead, the new one on its way
    with pytest.raises(asyncio.CancelledError):
        await call
    async with asyncio.timeout(10):  # the refresh runs on to its store
        while (now := await links.get_link(ALICE)) is None or (  # noqa: ASYNC110 - storage
            now.refresh_token == stored.refresh_token
        ):
            await asyncio.sleep(0.02)
    assert fake.refresh_token_valid(now.refresh_token)
    assert now.status == LinkStatus.OK
    fake.set_latency(0.0)
    assert len(await client.devices(ALICE)) == 1


async def test_invalid_grant_marks_the_link_for_relinking(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    fake.revoke_refresh_tokens("alice")
    fake.expire_access_tokens("alice")

    with pytest.raises(TokenRevoked, match="/link"):
        await client.playback(ALICE)
    stored = await links.get_link(ALICE)
    assert stored is not None
    assert stored.status == LinkStatus.NEEDS_RELINK

    sent = len(fake.log)
    with pytest.raises(TokenRevoked):
        await client.playback(ALICE)
    assert len(fake.log) == sent  # known dead: no request at all


async def test_a_second_401_after_refreshing_is_token_expired(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    fake.fail(401, path="/v1/me/player", times=2)
    with pytest.raises(TokenExpired):
        await client.playback(ALICE)
    assert fake.count("/api/token") == 1


async def test_unlinked_user_is_told_to_link(client: SpotifyClient) -> None:
    with pytest.raises(NotLinked, match="/link"):
        await client.playback(999)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "options", "expected"),
    [
        (403, {"reason": "PREMIUM_REQUIRED"}, PremiumRequired),
        (403, {}, RestrictionViolated),
        (404, {}, NoActiveDevice),
        (404, {"reason": "", "message": "Resource not found"}, NotFound),
        (429, {"retry_after": 7}, RateLimited),
        (500, {}, Upstream),
        (503, {}, Upstream),
        (400, {"message": "Malformed json"}, SpotifyError),
    ],
)
async def test_forced_status_maps_to_its_error_class(
    fake: FakeSpotify,
    links: Storage,
    client: SpotifyClient,
    status: int,
    options: dict[str, object],
    expected: type[SpotifyError],
) -> None:
    await link(links, fake, ALICE, "alice")
    fake.fail(status, path="/v1/me/player/pause", **options)  # type: ignore[arg-type]
    with pytest.raises(expected) as caught:
        await client.pause(ALICE)
    assert type(caught.value) is expected
    assert caught.value.message  # user-safe text, always present
    if isinstance(caught.value, Upstream):
        assert (caught.value.status, caught.value.timeout) == (status, False)
    if isinstance(caught.value, RateLimited):
        assert (caught.value.retry_after, caught.value.quota_exceeded) == (7, False)
        client.limiter.penalize(0)  # not what this test is about


async def test_quota_exceeded_body_is_reported(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    fake.fail(429, retry_after=3, quota=True)
    with pytest.raises(RateLimited) as caught:
        await client.playback(ALICE)
    assert (caught.value.retry_after, caught.value.quota_exceeded) == (3, True)
    assert "quota" in caught.value.message


async def test_player_refusals_from_the_simulated_accounts(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    await link(links, fake, BOB, "bob")
    await link(links, fake, CAROL, "carol")
    track = fake.catalog[0]

    with pytest.raises(PremiumRequired):
        await client.play(BOB, track.uri)
    bob = await links.get_link(BOB)
    assert bob is not None
    assert bob.status == LinkStatus.PREMIUM_REQUIRED
    assert await client.playback(BOB) is None  # reading works without Premium

    with pytest.raises(NoActiveDevice):
        await client.play(CAROL, track.uri)
    (device,) = await client.devices(CAROL)
    assert not device.is_active
    await client.play(CAROL, track.uri, device_id=device.id)  # targeting a device works
    assert fake.player("carol").now().track_id == track.id

    await client.play(ALICE, track.uri)
    await client.pause(ALICE)
    with pytest.raises(RestrictionViolated):
        await client.pause(ALICE)  # pausing a paused player


async def test_premium_flag_clears_when_a_command_succeeds(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, BOB, "bob")
    with pytest.raises(PremiumRequired):
        await client.play(BOB, fake.catalog[0].uri)
    fake.accounts["bob"].premium = True  # upgraded
    await client.play(BOB, fake.catalog[0].uri)
    bob = await links.get_link(BOB)
    assert bob is not None
    assert bob.status == LinkStatus.OK


# --- player and catalog ------------------------------------------------------------------


async def test_player_calls_drive_the_simulated_player(
    clocked: FakeSpotify, clock: WallClock, links: Storage, clocked_client: SpotifyClient
) -> None:
    fake, client = clocked, clocked_client  # the fake's time moves only when told
    await link(links, fake, ALICE, "alice")
    assert await client.playback(ALICE) is None  # nothing loaded yet: 204
    first, second = fake.catalog[0], fake.catalog[1]

    await client.play(ALICE, first.uri, position_ms=30_000)
    # Right after a command Spotify still shows the old state (read lag, on in the fake).
    assert await client.playback(ALICE) is None
    clock.advance(fake.lag.read_lag - 0.01)
    assert await client.playback(ALICE) is None
    clock.advance(0.02)
    playback = await client.playback(ALICE)
    assert playback is not None
    assert playback.track is not None
    assert playback.track.id == first.id
    assert playback.track.isrc == first.isrc
    assert playback.track.artists == first.artists
    assert playback.track.duration_ms == first.duration_ms
    assert playback.is_playing
    assert 30_000 <= playback.progress_ms < 40_000
    assert playback.device is not None
    assert playback.device.is_active
    assert playback.requested_at <= playback.answered_at

    await client.seek(ALICE, 90_000)
    assert 90_000 <= fake.player("alice").now().position_ms < 100_000
    await client.pause(ALICE)
    assert not fake.player("alice").now().is_playing
    await client.play(ALICE, None)  # resume
    assert fake.player("alice").now().is_playing

    fake.player("alice").load([first.id, second.id])
    await client.next_track(ALICE)
    assert fake.player("alice").now().track_id == second.id

    other = fake.accounts["alice"].devices[0]
    fake.accounts["alice"].devices.append(type(other)(id="phone0000", name="Alice's phone"))
    await client.transfer(ALICE, "phone0000", play=True)
    assert fake.player("alice").now().device_id == "phone0000"


async def test_track_uses_app_credentials(fake: FakeSpotify, client: SpotifyClient) -> None:
    wanted = fake.catalog[5]
    track = await client.track(wanted.id)
    assert (track.id, track.name, track.isrc) == (wanted.id, wanted.name, wanted.isrc)
    assert track.album_art_url
    await client.track(wanted.id)
    assert fake.count("/api/token") == 1  # the app token is reused
    (request, _) = fake.requests("/v1/tracks/")
    assert request.account_id is None
    assert request.app_id == fake.app.client_id

    with pytest.raises(NotFound):
        await client.track("0" * 22)
    with pytest.raises(NotFound):
        await client.track("not-an-id")


async def test_playlists_follow_paging(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    await link(links, fake, ALICE, "alice")
    ids = [t.id for t in fake.catalog] * 3  # 120 entries: two pages of 100
    big = fake.add_playlist("alice", "Big", ids)
    for n in range(54):
        fake.add_playlist("alice", f"List {n}", ids[:2])
    fake.add_playlist("bob", "Not mine", ids[:1])

    playlists = await client.user_playlists(ALICE)
    assert len(playlists) == 55
    assert playlists[0].id == big.id
    assert playlists[0].track_count == 120
    assert fake.count("/v1/me/playlists") == 2

    tracks = await client.playlist_tracks(big.id, ALICE)
    assert [t.id for t in tracks] == ids
    assert fake.count(f"/v1/playlists/{big.id}/items") == 2

    # Development mode: the app token reads no playlist's items, with the rule explained.
    with pytest.raises(PlaylistNotReadable, match="own or collaborate"):
        await client.playlist_tracks(big.id)
