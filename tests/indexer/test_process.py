"""`python -m bot index --watch` as an operator runs it: a .env without DISCORD_TOKEN, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.indexer.conftest import ALICE, TRACKS, World, ids

ROOT = Path(__file__).resolve().parents[2]
GAME_NIGHT_KEYS = ("DISCORD_", "SPOTIFY_", "TOKEN_", "STORAGE_", "HTTP_", "PUBLIC_", "LOG_")


def child_env(tmp_path: Path) -> dict[str, str]:
    """This environment without Game Night keys (the .env must count), and with the network
    guard installed in the child too (a sitecustomize on its path), so it cannot go online."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text("from tests import netguard\nnetguard.install()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(GAME_NIGHT_KEYS)}
    env.pop("FORCE_COLOR", None)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(guard)]),
        PYTHONUNBUFFERED="1",
        HOME=str(tmp_path),
    )
    return env


async def test_python_m_bot_index_watch_reports_cached_and_stops_on_sigterm(
    world: World, tmp_path: Path
) -> None:
    playlist = world.spotify.add_playlist("alice", "Cached", ids(TRACKS[:3]), public=True)
    status, _, _ = await world.index(
        "--as", str(ALICE), "--playlist", playlist.id
    )  # fills the cache
    assert status == 0
    world.youtube.counts.reset()
    assert "DISCORD_TOKEN" not in world.env
    (tmp_path / ".env").write_text("\n".join(f"{k}={v}" for k, v in world.env.items()))

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "index",
        "--as",
        str(ALICE),
        "--playlist",
        f"https://open.spotify.com/playlist/{playlist.id}",
        "--watch",
        "0.2",
        cwd=tmp_path,
        env=child_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        while not any(line.startswith("Run 2 at") for line in seen):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"the indexer ended early: {seen}"
            seen.append(line.decode())
        proc.send_signal(signal.SIGTERM)
        rest, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    out = "".join(seen) + rest.decode()
    assert proc.returncode == 0, stderr.decode()
    assert stderr.decode() == ""
    assert out.count("resolved 0 · already cached 3 · failed 0") >= 1
    assert out.rstrip().endswith("Stopped watching.")
    assert "\x1b[" not in out and "━" not in out  # piped: no live bar, no colours
    assert world.youtube.counts.searches == 0
    assert world.youtube.counts.page_fetches == 0
