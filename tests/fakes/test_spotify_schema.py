"""The fake Spotify's JSON follows the official OpenAPI description, endpoint by endpoint.

Every Web API endpoint the fake serves is exercised through the real spotipy, then each logged
answer is validated with openapi-core against tests/specs/spotify-web-api.openapi.yml.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import spotipy
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_schema_validator import OAS30Validator

from tests.fakes.spotify import FakeSpotify, RequestRecord

# Spotify's official OpenAPI description, vendored with its licence.
SPEC = Path(__file__).resolve().parents[1] / "specs" / "spotify-web-api.openapi.yml"

# Answers real Spotify gives that the description does not list (checked as error bodies or
# empty answers instead): 204 from currently-playing, 404 from player commands.
# 202 Accepted from a command that wakes a device (spotify/web-api #636, #640).
UNDOCUMENTED_EMPTY = {
    ("GET", "/me/player/currently-playing", 204),
    ("PUT", "/me/player/play", 202),
    ("PUT", "/me/player", 202),
}


def load_spec(base: str) -> tuple[OpenAPI, dict[str, Any]]:
    with SPEC.open() as handle:
        spec = yaml.load(handle, Loader=yaml.CSafeLoader)
    spec["servers"] = [{"url": base + "/v1"}]
    _map_discriminators(spec)
    return OpenAPI.from_dict(spec), spec


def _map_discriminators(node: object) -> None:
    """The description's `item` discriminators name no mapping, so a validator looks for
    schemas called "track"/"episode"; point them at TrackObject/EpisodeObject."""
    if isinstance(node, dict):
        found = node.get("discriminator")
        if isinstance(found, dict) and "mapping" not in found:
            found["mapping"] = {
                "track": "#/components/schemas/TrackObject",
                "episode": "#/components/schemas/EpisodeObject",
            }
        for value in node.values():
            _map_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _map_discriminators(value)


def exercise(fake: FakeSpotify) -> None:
    """Call every endpoint the fake serves, including error and empty answers."""
    tokens = fake.issue_tokens("alice")
    sp = spotipy.Spotify(auth=tokens.access_token, requests_session=requests.Session())
    sp.prefix = fake.base + "/v1/"
    first, second = fake.catalog[0], fake.catalog[1]
    playlist = fake.add_playlist("alice", "Game night", [t.id for t in fake.catalog[:25]])
    for n in range(3):
        fake.add_playlist("alice", f"Mix {n}", [first.id])

    sp.me()
    sp.current_playback()  # 204
    sp.currently_playing()  # 204 (undocumented)
    sp.devices()
    sp.start_playback(uris=[first.uri, second.uri], position_ms=1000)
    sp.current_playback()
    sp.currently_playing()
    sp.seek_track(5000)
    sp.pause_playback()
    with pytest.raises(spotipy.SpotifyException):
        sp.pause_playback()  # 403 Restriction violated
    sp.start_playback()  # resume
    sp.next_track()
    sp.start_playback(context_uri=f"spotify:playlist:{playlist.id}", offset={"position": 2})
    sp.current_playback()  # with a context
    device = fake.accounts["alice"].devices[0].id
    sp.transfer_playback(device, force_play=False)
    sp.track(first.id)
    page = sp.current_user_playlists(limit=2)
    while page:
        page = sp.next(page)
    page = sp.playlist_items(playlist.id, limit=10)
    while page:
        page = sp.next(page)
    sp._get(f"playlists/{playlist.id}/tracks", limit=5)  # the older path
    # Development mode: a collaborative playlist reads, someone else's 403, Spotify's own 404.
    shared = fake.add_playlist("bob", "Shared", [first.id], collaborators=["alice"])
    sp.playlist_items(shared.id)
    for other in (fake.add_playlist("bob", "Bob's", [first.id], public=True),
                  fake.add_playlist("spotify", "Top Hits", [first.id], public=True)):  # fmt: skip
        with pytest.raises(spotipy.SpotifyException):
            sp.playlist_items(other.id)
    # A command that wakes another device: 202 Accepted.
    fake.accounts["alice"].devices.append(type(fake.accounts["alice"].devices[0])("phone1", "P"))
    sp.start_playback(device_id="phone1", uris=[second.uri])
    assert fake.log[-1].status == 202
    for call in (
        lambda: sp.track("0" * 22),  # 404
        lambda: sp.track("shortid"),  # 400
    ):
        with pytest.raises(spotipy.SpotifyException):
            call()

    bob = fake.issue_tokens("bob")
    fake.devmode.disallow("carol")
    sp.set_auth(fake.issue_tokens("carol").access_token)
    with pytest.raises(spotipy.SpotifyException):
        sp.current_playback()  # 403 User not registered in the Developer Dashboard
    fake.devmode.allow("carol")
    sp.set_auth(bob.access_token)
    with pytest.raises(spotipy.SpotifyException):
        sp.start_playback(uris=[first.uri])  # 403 PREMIUM_REQUIRED
    carol = fake.issue_tokens("carol")
    sp.set_auth(carol.access_token)
    with pytest.raises(spotipy.SpotifyException):
        sp.pause_playback()  # 404 NO_ACTIVE_DEVICE
    fake.fail(429, retry_after=2, quota=True)
    with pytest.raises(spotipy.SpotifyException):
        sp.devices()
    sp.set_auth("not-a-token")
    with pytest.raises(spotipy.SpotifyException):
        sp.me()  # 401


def validate(api: OpenAPI, spec: dict[str, Any], fake: FakeSpotify, record: RequestRecord) -> None:
    request = requests.Request(
        record.method,
        fake.base + record.path,
        params=record.query,
        json=record.body if record.body is not None else None,
    ).prepare()
    response = requests.Response()
    response.status_code = record.status
    response.request = request
    if record.response is not None:
        response._content = json.dumps(record.response).encode()
        response.headers["Content-Type"] = "application/json"
    else:
        response._content = b""
    try:
        api.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response))
    except ResponseNotFound:
        path = record.path.removeprefix("/v1")
        if record.status >= 400:
            # Not listed for this operation, but still Spotify's error object.
            schema = spec["components"]["responses"]["Unauthorized"]["content"]["application/json"]
            resolver_spec = {"components": spec["components"], **schema["schema"]}
            OAS30Validator(resolver_spec).validate(record.response)
        else:
            assert (record.method, path, record.status) in UNDOCUMENTED_EMPTY, record
            assert record.response is None


async def test_every_endpoint_answers_per_the_official_schema() -> None:
    async with FakeSpotify() as fake:
        fake.add_account("alice", "Alice")
        fake.add_account("bob", premium=False)
        fake.add_account("carol", active=False)
        await asyncio.to_thread(exercise, fake)
        api, spec = load_spec(fake.base)

        records = [r for r in fake.log if r.path.startswith("/v1/")]
        served = {(r.method, r.path.split("/")[2], r.status) for r in records}
        for record in records:
            validate(api, spec, fake, record)

    statuses = {status for _, _, status in served}
    assert statuses >= {200, 204, 400, 401, 403, 404, 429}
    routes = {(r.method, _template(r.path)) for r in records}
    assert routes >= {
        ("GET", "/v1/me"),
        ("GET", "/v1/me/player"),
        ("PUT", "/v1/me/player"),
        ("GET", "/v1/me/player/currently-playing"),
        ("GET", "/v1/me/player/devices"),
        ("PUT", "/v1/me/player/play"),
        ("PUT", "/v1/me/player/pause"),
        ("PUT", "/v1/me/player/seek"),
        ("POST", "/v1/me/player/next"),
        ("GET", "/v1/tracks/{id}"),
        ("GET", "/v1/me/playlists"),
        ("GET", "/v1/playlists/{id}/items"),
        ("GET", "/v1/playlists/{id}/tracks"),
    }


def _template(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 3 and parts[2] in ("tracks", "playlists"):
        parts[3] = "{id}"
    return "/".join(parts)


async def test_the_check_catches_an_answer_that_breaks_the_schema() -> None:
    async with FakeSpotify() as fake:
        fake.add_account("alice")
        sp = spotipy.Spotify(auth=fake.issue_tokens("alice").access_token)
        sp.prefix = fake.base + "/v1/"
        await asyncio.to_thread(sp.track, fake.catalog[0].id)
        api, spec = load_spec(fake.base)
        (record,) = fake.requests("/v1/tracks/")
        validate(api, spec, fake, record)
        record.response["artists"][0]["type"] = "band"  # the enum allows only "artist"
        with pytest.raises(Exception, match="band"):
            validate(api, spec, fake, record)
