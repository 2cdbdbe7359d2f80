"""Storage fixtures: every contract test runs once per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from storage import Storage, TokenCipher, open_storage
from tests.conftest import storage_url_for

Opener = Callable[..., Awaitable[Storage]]


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher.generate()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return storage_url_for(backend, tmp_path, request)


@pytest.fixture
async def open_store(storage_url: str, cipher: TokenCipher) -> AsyncIterator[Opener]:
    """Open the backend under test (several times, for reopen tests); all closed at teardown."""
    opened: list[Storage] = []

    async def opener(max_streams: int = 100) -> Storage:
        store = await open_storage(storage_url, cipher, max_streams=max_streams)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.aclose()


@pytest.fixture
async def store(open_store: Opener) -> Storage:
    return await open_store()
