"""One bot process per SQLite file; the indexer and import-songs still open it beside the bot."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from bot.__main__ import running
from bot.dblock import lock_sqlite
from bot.services import open_resources
from bot.startup import StartupError
from tests.bot.conftest import World


async def test_a_second_bot_on_the_same_sqlite_file_fails_at_once(world: World) -> None:
    async with world.run() as app:
        with pytest.raises(StartupError, match="already running"):
            async with running(world.settings):
                pass
        # `python -m bot index` / `import-songs` open the same file beside the bot on purpose:
        async with AsyncExitStack() as stack:
            res = await open_resources(stack, world.settings, resolver_workers=1)
            await res.storage.list_sessions()
        assert app.services.storage is not None
    # The bot is gone: its lock with it.
    held = lock_sqlite(world.settings.storage_url)
    assert held is not None
    held.close()


def test_redis_takes_no_file_lock() -> None:
    assert lock_sqlite("redis://127.0.0.1:6379/0") is None
