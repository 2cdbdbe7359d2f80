"""A cap on how many relay streams one client holds open at once.

A relay stream ties up an upstream fetch from YouTube on the client's behalf for as long as
the client keeps reading; a page tab needs one or two (the playing track, a prefetch). Past the
cap a client gets 429 instead of another upstream connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.web.ratelimit import TooManyRequests

DEFAULT_PER_CLIENT = 6


class StreamSlots:
    def __init__(self, per_client: int = DEFAULT_PER_CLIENT) -> None:
        if per_client < 1:
            raise ValueError("per_client must be >= 1")
        self.per_client = per_client
        self._open: dict[str, int] = {}  # only clients with a stream open: bounded by them

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        """One open stream for `client` while the block runs; TooManyRequests past the cap."""
        held = self._open.get(client, 0)
        if held >= self.per_client:
            raise TooManyRequests(5.0)
        self._open[client] = held + 1
        try:
            yield
        finally:
            left = self._open[client] - 1
            if left:
                self._open[client] = left
            else:
                del self._open[client]

    def held(self, client: str) -> int:
        return self._open.get(client, 0)
