"""core.audience on real Redis: a process's count outlives the TTL while its browsers stay
and goes at once on a clean stop (a dead process's lapse: tests/storage/test_contract.py);
the watch reports changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.audience import AudiencePublisher, AudienceWatch
from storage import TokenCipher, open_storage
from tests.conftest import storage_url_for


async def test_publisher_refreshes_while_browsers_stay_and_clears_on_close(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = await open_storage(storage_url_for("redis", tmp_path, request), TokenCipher.generate())
    try:
        stays = AudiencePublisher(store, ttl_s=0.9)
        stays.changed(5, 2)
        await asyncio.sleep(0.1)
        assert await store.get_audience(5) == 2
        await asyncio.sleep(2.0)  # two TTLs: rewritten every third of it while browsers stay
        assert await store.get_audience(5) == 2

        reports: list[tuple[int, int]] = []

        async def guilds() -> list[int]:
            return [5]

        watch = AudienceWatch(store, guilds, lambda g, n: reports.append((g, n)))
        await watch.check()
        await watch.check()  # unchanged: reported once
        await stays.aclose()
        await watch.check()
        assert reports == [(5, 2), (5, 0)]
        assert await store.get_audience(5) == 0
    finally:
        await store.aclose()
