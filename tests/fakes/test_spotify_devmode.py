"""The fake's development-mode quota is per developer account: every app of it shares one."""

from __future__ import annotations

import asyncio

import pytest
import requests
import spotipy

from tests.fakes.spotify import FakeSpotify


def client(fake: FakeSpotify, token: str) -> spotipy.Spotify:
    sp = spotipy.Spotify(auth=token, requests_session=requests.Session(), retries=0)
    sp.prefix = fake.base + "/v1/"
    return sp


async def test_apps_of_one_developer_account_share_its_quota() -> None:
    async with FakeSpotify() as fake:
        fake.add_account("alice")
        other = fake.add_app("second-app", "secret")
        fake.devmode.allow("alice", other.client_id)
        fake.quota.budget, fake.quota.retry_after = 3, 14 * 3600
        first = client(fake, fake.issue_tokens("alice").access_token)
        second = client(fake, fake.issue_tokens("alice", app_id=other.client_id).access_token)
        await asyncio.to_thread(first.me)
        await asyncio.to_thread(second.me)
        await asyncio.to_thread(first.me)
        with pytest.raises(spotipy.SpotifyException) as raised:
            await asyncio.to_thread(second.me)
        assert raised.value.http_status == 429
        assert fake.log[-1].response == {
            "error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}
        }
        assert 13 * 3600 < int(raised.value.headers["Retry-After"]) <= 14 * 3600
        # The token endpoint of either app is refused too.
        form = {"grant_type": "client_credentials"}
        answer = await asyncio.to_thread(
            requests.post, fake.base + "/api/token", data=form, auth=("second-app", "secret")
        )
        assert answer.status_code == 429
        # Another developer account's app is not affected.
        elsewhere = fake.add_app("third-app", "secret")
        elsewhere.developer = "someone-else"
        fake.devmode.allow("alice", elsewhere.client_id)
        third = client(fake, fake.issue_tokens("alice", app_id=elsewhere.client_id).access_token)
        assert (await asyncio.to_thread(third.me))["id"] == "alice"
