"""Session-wide test setup: the network guard, a private redis-server, storage factories."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests import netguard

netguard.install()

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _no_network_escapes() -> Iterator[None]:
    """Fail the test if anything tried to leave loopback, even when the error was swallowed."""
    before = len(netguard.BLOCKED)
    yield
    escaped = netguard.BLOCKED[before:]
    assert not escaped, f"test tried to reach the network: {escaped}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start a private, non-persistent redis-server on a free port; yield its URL and process."""
    exe = shutil.which("redis-server")
    if exe is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if IN_CI:
            pytest.fail(message + "; under CI=true this fails the run")
        pytest.skip(message)
    workdir = tempfile.mkdtemp(prefix="gamenight-redis-")
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [exe, *args, "--dir", workdir, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start on port {port}")
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The session's redis-server (or REDIS_URL when given)."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with redis_server() as (url, _):
        yield url
