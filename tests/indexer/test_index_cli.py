"""`python -m bot index` in-process, against the fake Spotify and YouTube with real SQLite."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import replace

import pytest

from tests.indexer.conftest import ALICE, BOB, TRACKS, UNFINDABLE, World, ids, wait_until


async def test_indexes_paged_playlists_once_then_everything_is_cached(world: World) -> None:
    big = world.spotify.add_playlist("alice", "Road Trip", ids(TRACKS), public=True)
    # Overlaps the big one: shared tracks are resolved once.
    small = world.spotify.add_playlist("alice", "Chill", ids(TRACKS[:5]), public=True)

    status, out, err = await world.index(
        "--as",
        str(ALICE),
        "--playlist",
        f"https://open.spotify.com/playlist/{big.id}?si=0123abcd",
        "--playlist",
        f"spotify:playlist:{small.id}",
        "--concurrency",
        "8",
    )

    assert (status, err) == (0, "")
    assert f"Indexing 2 playlists: {big.id} (110), {small.id} (5); 110 distinct tracks" in out
    assert "resolved 110 · already cached 0 · failed 0" in out
    assert await world.store.count_streams() == len(TRACKS)
    # Both pages of the 110-track playlist were read.
    assert world.spotify.count(path=f"/v1/playlists/{big.id}/items") == 2
    for track in (TRACKS[0], TRACKS[-1]):
        entry = await world.store.get_stream(track.id)
        assert entry is not None and entry.stream_url.startswith(world.youtube.base_url)
    assert world.youtube.counts.page_fetches == len(TRACKS)
    written = {t.id: await world.store.get_stream(t.id) for t in TRACKS}

    world.youtube.counts.reset()
    status, out, err = await world.index(
        "--as", str(ALICE), "--playlist", big.id, "--playlist", small.id
    )

    assert (status, err) == (0, "")
    assert "resolved 0 · already cached 110 · failed 0" in out
    # A valid cache entry costs neither a search nor an extraction ...
    assert world.youtube.counts.searches == 0
    assert world.youtube.counts.page_fetches == 0
    # ... nor a write: indexing is not listening, last_access stays as it was.
    assert {t.id: await world.store.get_stream(t.id) for t in TRACKS} == written


async def test_an_interrupted_run_continues_where_it_stopped(world: World) -> None:
    tracks = TRACKS[:30]
    playlist = world.spotify.add_playlist("alice", "Long", ids(tracks), public=True)
    world.youtube.search_delay = 0.02  # slow enough to stop half-way
    stop = asyncio.Event()
    run = asyncio.create_task(
        world.index("--as", str(ALICE), "--playlist", playlist.id, "--concurrency", "2", stop=stop)
    )
    await wait_until(lambda: world.youtube.counts.page_fetches >= 8)
    stop.set()
    status, out, err = await run

    assert (status, err) == (130, "")
    assert "Interrupted with" in out and "running this again continues" in out
    # Finished tracks were written as they landed; the ones in flight at the stop were not.
    done = await world.store.count_streams()
    assert 0 < done < len(tracks)

    world.youtube.search_delay = 0.0
    world.youtube.counts.reset()
    status, out, err = await world.index("--as", str(ALICE), "--playlist", playlist.id)

    assert (status, err) == (0, "")
    assert f"resolved {len(tracks) - done} · already cached {done} · failed 0" in out
    # Only the tracks the first run did not finish were looked up.
    assert world.youtube.counts.page_fetches == len(tracks) - done
    assert await world.store.count_streams() == len(tracks)


async def test_an_unmatchable_track_is_reported_failed_with_its_reason(world: World) -> None:
    playlist = world.spotify.add_playlist(
        "alice", "Mixed", [TRACKS[0].id, UNFINDABLE.id, TRACKS[1].id], public=True
    )

    status, out, err = await world.index("--as", str(ALICE), "--playlist", playlist.id)

    assert status == 1  # finished, but not everything could be indexed
    assert err == ""
    assert "resolved 2 · already cached 0 · failed 1" in out
    assert "failed, no matching YouTube video: 1 — Nobody Knows — Unfindable Ghost" in out
    assert await world.store.get_stream(UNFINDABLE.id) is None

    # The negative cache answers the next run: still failed, for the same reason, no search.
    world.youtube.counts.reset()
    status, out, _ = await world.index("--as", str(ALICE), "--playlist", playlist.id)
    assert status == 1
    assert "resolved 0 · already cached 2 · failed 1" in out
    assert "failed, no matching YouTube video: 1 — Nobody Knows — Unfindable Ghost" in out
    assert world.youtube.counts.searches == 0


async def test_user_indexes_every_playlist_of_a_linked_user_with_their_token(
    world: World,
) -> None:
    # Private playlists: only alice's own token can read them.
    games = world.spotify.add_playlist("alice", "Games", ids(TRACKS[0:4]))
    world.spotify.add_playlist("alice", "Focus", ids(TRACKS[3:7]))
    world.spotify.add_playlist("alice", "Party", ids(TRACKS[7:9]))
    world.spotify.add_account("someone", "Someone")
    world.spotify.add_playlist("someone", "Not Alice's", ids(TRACKS[20:25]), public=True)
    await world.link(ALICE, "alice")

    # Also named by id (the app's token could not read it): read once, with alice's token.
    status, out, err = await world.index(
        "--as", str(ALICE), "--playlist", games.id, "--user", str(ALICE)
    )

    assert (status, err) == (0, "")
    assert "Indexing 3 playlists: Games (4), Focus (4), Party (2); 9 distinct tracks" in out
    assert world.spotify.count(path=f"/v1/playlists/{games.id}/items") == 1
    assert "resolved 9 · already cached 0 · failed 0" in out
    assert {t.id for t in TRACKS[:9]} == {
        t.id for t in TRACKS[:25] if await world.store.get_stream(t.id) is not None
    }
    assert world.spotify.count(path="/v1/me/playlists", account="alice") == 1


async def test_user_who_never_linked_is_told_to_run_link(world: World) -> None:
    status, out, err = await world.index("--user", str(BOB))

    assert status == 2
    assert err.strip() == f"Discord user {BOB} has not linked Spotify: run /link first."
    assert "Traceback" not in out + err
    assert world.youtube.counts.searches == 0


async def test_a_playlist_read_with_the_app_token_explains_the_rule(world: World) -> None:
    public = world.spotify.add_playlist("alice", "Public", ids(TRACKS[:2]), public=True)

    status, _, err = await world.index("--playlist", public.id)  # no --as: the app's token

    assert status == 2
    assert f"Spotify refused to let this bot read playlist {public.id}" in err
    assert "development mode" in err and "--as DISCORD_USER_ID" in err
    assert len(err.strip().splitlines()) == 1
    assert world.youtube.counts.searches == 0


async def test_a_user_run_skips_and_reports_playlists_it_may_not_read(world: World) -> None:
    world.spotify.add_account("bob", "Bob")
    own = world.spotify.add_playlist("alice", "Mine", ids(TRACKS[0:3]))
    shared = world.spotify.add_playlist("bob", "Ours", ids(TRACKS[3:5]), collaborators=["alice"])
    world.spotify.add_playlist("bob", "Bob's", ids(TRACKS[5:8]), public=True, followers=["alice"])
    world.spotify.add_playlist(
        "spotify", "Today's Top Hits", ids(TRACKS[8:10]), public=True, followers=["alice"]
    )

    status, out, err = await world.index("--user", str(ALICE))

    assert (status, err) == (0, "")
    assert "Indexing 2 playlists: Mine (3), Ours (2); 5 distinct tracks" in out
    assert "skipped Bob's: not theirs: only owned or collaborative playlists" in out
    assert "skipped Today's Top Hits: one of Spotify's own playlists" in out
    assert "resolved 5 · already cached 0 · failed 0" in out
    assert world.spotify.count(path=f"/v1/playlists/{own.id}/items") == 1
    assert world.spotify.count(path=f"/v1/playlists/{shared.id}/items") == 1


async def test_a_run_the_budget_cannot_carry_is_refused_up_front(world: World) -> None:
    big = world.spotify.add_playlist("alice", "Big", ids(TRACKS) * 6)  # 660 entries: 7 pages
    world.env["SPOTIFY_DAILY_BUDGET"] = "10"  # background work may spend half: 5

    status, _, err = await world.index("--user", str(ALICE))

    assert status == 1
    # Listing alice's playlists spent 1 of the 5.
    assert "This run needs about 7 Spotify calls to read its playlists, but only 4" in err
    assert "SPOTIFY_DAILY_BUDGET" in err
    assert world.spotify.count(path=f"/v1/playlists/{big.id}/items") == 0
    assert world.youtube.counts.searches == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--playlist", "0" * 22], "Spotify has no playlist 0000000000000000000000"),
        (["--playlist", "https://example.com/playlist/x"], "is not a Spotify playlist"),
        (["--playlist", "spotify:track:4PTG3Z6ehGkBFwjybzWkR8"], "is not a Spotify playlist"),
        (["--user", "alice"], "is not a Discord user id"),
        (["--playlist", "0" * 22, "--concurrency", "0"], "from 1 to 64"),
        (["--playlist", "0" * 22, "--watch", "-1"], "positive number of seconds"),
        ([], "nothing to index"),
    ],
)
async def test_bad_input_exits_2_with_one_clear_message(
    world: World, argv: list[str], message: str
) -> None:
    status, out, err = await world.index(*argv)

    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err
    # A valid-looking unknown id asks Spotify once and resolves nothing.
    assert world.youtube.counts.searches == 0


async def test_missing_settings_print_the_settings_report(world: World) -> None:
    world.env.pop("SPOTIFY_CLIENT_SECRET")
    world.env.pop("SPOTIFY_CLIENT_ID")

    status, _, err = await world.index("--as", str(ALICE), "--playlist", "0" * 22)

    assert status == 2
    assert "SPOTIFY_CLIENT_SECRET is missing" in err
    assert "SPOTIFY_CLIENT_ID is missing" in err  # every problem at once
    assert "DISCORD_TOKEN" not in err  # the indexer never talks to Discord


async def test_watch_runs_again_until_stopped_and_picks_up_new_tracks(world: World) -> None:
    playlist = world.spotify.add_playlist("alice", "Growing", ids(TRACKS[:2]), public=True)
    stop = asyncio.Event()
    out = io.StringIO()
    run = asyncio.create_task(
        world.index(
            "--as", str(ALICE), "--playlist", playlist.id, "--watch", "0.05", stop=stop, out=out
        )
    )
    # Add the track once run 2 is done: added while run 2 read the playlist, it raced it.
    await wait_until(lambda: "resolved 0 · already cached 2" in out.getvalue())
    playlist.track_ids.append(TRACKS[2].id)  # someone adds a track meanwhile
    await wait_until(lambda: "resolved 1 · already cached 2" in out.getvalue())
    stop.set()
    status, text, err = await run

    assert (status, err) == (0, "")
    assert "resolved 2 · already cached 0 · failed 0" in text  # run 1
    assert "resolved 0 · already cached 2 · failed 0" in text  # run 2
    assert "Next run in 0.05 s (Ctrl-C to stop)." in text
    assert text.rstrip().endswith("Stopped watching.")
    assert await world.store.count_streams() == 3


async def test_progress_bar_only_on_a_terminal(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    playlist = world.spotify.add_playlist("alice", "Short", ids(TRACKS[:3]), public=True)

    _, piped, _ = await world.index("--as", str(ALICE), "--playlist", playlist.id)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich: treat the output as a terminal
    _, terminal, _ = await world.index("--as", str(ALICE), "--playlist", playlist.id)

    assert "━" not in piped and "\x1b[" not in piped
    assert "3/3" in terminal and "━" in terminal
    # The summary is there either way.
    assert "already cached 3" in terminal


async def test_an_expired_stream_url_is_renewed_without_a_new_search(world: World) -> None:
    playlist = world.spotify.add_playlist("alice", "Old", ids(TRACKS[:2]), public=True)
    await world.index("--as", str(ALICE), "--playlist", playlist.id)
    entry = await world.store.get_stream(TRACKS[0].id)
    assert entry is not None
    await world.store.put_stream(replace(entry, expires_at=time.time() - 60))
    world.youtube.counts.reset()

    status, out, _ = await world.index("--as", str(ALICE), "--playlist", playlist.id)

    assert status == 0
    assert "resolved 1 (1 only renewed an expired stream URL) · already cached 1" in out
    assert world.youtube.counts.searches == 0  # the cached video was kept
    assert world.youtube.counts.page_fetches == 1
    renewed = await world.store.get_stream(TRACKS[0].id)
    assert renewed is not None and renewed.video_url == entry.video_url
    assert renewed.expires_at > time.time() + 3600


async def test_spotify_trouble_is_one_line_and_a_watch_survives_it(world: World) -> None:
    playlist = world.spotify.add_playlist("alice", "Flaky", ids(TRACKS[:1]), public=True)
    world.spotify.fail(503, path=f"/v1/playlists/{playlist.id}", times=None)

    status, out, err = await world.index("--as", str(ALICE), "--playlist", playlist.id)

    assert (status, out) == (1, "")
    assert err == "Spotify: Spotify is having trouble right now; try again shortly.\n"

    # In watch mode the next run tries again.
    world.spotify.clear_faults()
    world.spotify.fail(503, path=f"/v1/playlists/{playlist.id}", times=1)
    stop = asyncio.Event()
    text = io.StringIO()
    run = asyncio.create_task(
        world.index(
            "--as", str(ALICE), "--playlist", playlist.id, "--watch", "0.05", stop=stop, out=text
        )
    )
    await wait_until(lambda: "resolved 1 · already cached 0" in text.getvalue())
    stop.set()
    status, _, err = await run
    assert status == 0
    assert err.count("Spotify is having trouble") == 1
