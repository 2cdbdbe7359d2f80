"""A link granted fewer scopes than the bot uses asks for a relink, not "Spotify is not
answering" (Spotify answers 403 "Insufficient client scope", as the fake does)."""

from __future__ import annotations

import time

import pytest

from core.errors import ScopeMissing, TokenRevoked
from core.spotify import SpotifyClient
from core.sync.failures import classify
from core.sync.planner import Pause
from storage import Storage
from storage.records import ListenerStatus, SpotifyLink
from tests.fakes.spotify import FakeSpotify
from tests.spotify.conftest import ALICE


async def test_a_missing_scope_is_a_relink_prompt(
    fake: FakeSpotify, links: Storage, client: SpotifyClient
) -> None:
    fake.add_account("alice", "Alice")
    tokens = fake.issue_tokens("alice", scopes=("user-read-playback-state",))  # no modify
    await links.put_link(
        SpotifyLink(
            ALICE,
            "alice",
            "Alice",
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at,
            tokens.scopes,
            linked_at=time.time(),
        )
    )
    with pytest.raises(ScopeMissing) as raised:
        await client.pause(ALICE)
    assert isinstance(raised.value, TokenRevoked)  # every relink path treats it as one
    assert "run /link again" in raised.value.message
    verdict = classify(raised.value, Pause(), now=0.0)
    assert verdict.status is ListenerStatus.NEEDS_RELINK
    assert "/link" in verdict.detail and "not answering" not in verdict.detail
    assert verdict.tell_user
