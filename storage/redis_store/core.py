"""What every Redis store shares: the client, key names, and the error and cancel handling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.crypto import TokenCipher
from storage.errors import StorageError, StorageUnavailable
from storage.outage import Outage

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="RedisCore")

MAX_CONNECTIONS = 50  # per process; commands beyond it queue for a free connection
CONNECTION_WAIT_S = 10.0  # then StorageUnavailable, rather than waiting forever
CLOSE_S = 2.0  # closing a release subscription: past this, the connection is left to the pool


def _cancels() -> int:
    """How many cancels the current task has been asked for (and not yet taken back)."""
    task = asyncio.current_task()
    return 0 if task is None else task.cancelling()


def _lost_cancel(before: int) -> None:
    """Raise the cancel a Redis call swallowed, if any (`before`: `_cancels()` at its start).

    redis-py sends every command through `asyncio.wait_for` (our `socket_timeout`), and on
    Python 3.11 `wait_for` returns the reply instead of raising when its caller is cancelled in
    the loop turn the reply arrives in (CPython gh-86296, fixed by 3.12's rewrite): the cancel
    is lost and the task runs on, so whoever cancelled it and waits for it waits forever (the
    lease tests' hang on a loaded machine: a supervisor's rescan or a lease's renewal outlived
    its `aclose`). A cancel requested during the call that did not end it is raised here, so
    the caller stops at the storage boundary as if the call had been cut short.
    """
    if _cancels() > before:
        raise asyncio.CancelledError


def _redis_errors(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Turn client errors into StorageError / StorageUnavailable with the server named, and
    give back a cancel redis-py swallowed (`_lost_cancel`)."""

    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.closed:  # redis-py would silently reconnect; a closed store should say so
            raise StorageUnavailable(f"Redis storage {self.url} is closed")
        cancels = _cancels()
        try:
            result = await method(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            _lost_cancel(cancels)
            self.outage.failed(exc)
            raise StorageUnavailable(f"Redis at {self.url} is unreachable: {exc}") from exc
        except RedisError as exc:
            _lost_cancel(cancels)
            raise StorageError(f"Redis at {self.url} failed: {exc}") from exc
        _lost_cancel(cancels)
        self.outage.answered()
        return result

    return wrapper


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _num(value: str | None) -> int | None:
    return None if value in (None, "") else int(value)


class RedisCore:
    """The client and the key namespace every store below builds on."""

    def __init__(
        self, client: aioredis.Redis, url: str, prefix: str, cipher: TokenCipher, max_streams: int
    ) -> None:
        self._r = client
        self._p = prefix
        self._cipher = cipher
        self._max_streams = max_streams
        self.url = url  # without credentials: safe to log
        self.shared_across_processes = True
        self.closed = False
        self.outage = Outage(url)
        self._register_scripts()

    def _register_scripts(self) -> None:
        """Each store registers its Lua scripts here (they are sent on first use)."""

    def _k(self, *parts: object) -> str:
        return self._p + ":".join(str(p) for p in parts)
