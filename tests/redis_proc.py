"""A private, throwaway redis-server on a free loopback port.

Plain code, no pytest: the test session (tests/conftest.py) and the benchmarks both start one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

NOT_INSTALLED = "redis-server is not installed (apt-get install redis-server)"


class RedisNotInstalled(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redis_installed() -> bool:
    return shutil.which("redis-server") is not None


@contextmanager
def redis_server(start_timeout: float = 10) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start a non-persistent redis-server; yield its URL and process; kill it on exit.

    Raises RedisNotInstalled when there is no redis-server, RuntimeError when it does not start.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        raise RedisNotInstalled(NOT_INSTALLED)
    workdir = tempfile.mkdtemp(prefix="gamenight-redis-")
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [exe, *args, "--dir", workdir, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
