"""Session-wide test setup: the network guard, a private redis-server, storage factories."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import netguard, redis_proc
from tests.redis_proc import free_port

# Helpers other test modules import from here (free_port lives in tests.redis_proc now).
__all__ = ["free_port", "redis_server", "storage_url_for"]

netguard.install()

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _no_network_escapes() -> Iterator[None]:
    """Fail the test if anything tried to leave loopback, even when the error was swallowed."""
    before = len(netguard.BLOCKED)
    yield
    escaped = netguard.BLOCKED[before:]
    assert not escaped, f"test tried to reach the network: {escaped}"


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server (tests.redis_proc); skipped when not installed, failed under CI."""
    if not redis_proc.redis_installed():
        message = redis_proc.NOT_INSTALLED
        if IN_CI:
            pytest.fail(message + "; under CI=true this fails the run")
        pytest.skip(message)
    with redis_proc.redis_server() as started:
        yield started


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The session's redis-server (or REDIS_URL when given)."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with redis_server() as (url, _):
        yield url


def storage_url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of `backend` ("sqlite" or "redis") for one test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/gamenight.db"
    if backend != "redis":
        raise ValueError(f"unknown storage backend {backend!r}")
    redis_url: str = request.getfixturevalue("redis_url")
    # A namespace per test keeps tests apart on the one shared server.
    return f"{redis_url}?prefix=test-{uuid.uuid4().hex}"
