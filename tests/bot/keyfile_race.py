"""The child side of the key-file race (tests/bot/test_keyfile.py), in a module of its own:
a spawned child imports the module its target lives in, and the test module's imports (the
whole bot, through tests.bot.conftest) cost seconds per child where this one costs little."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

from bot.keyfile import with_stored_key
from bot.settings import Settings


def make_key(settings: Settings, start: Event, out: Queue[str]) -> None:
    start.wait()
    out.put(with_stored_key(settings).token_encryption_key)
