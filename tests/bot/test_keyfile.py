"""The generated key file (#14 review): damaged files are a clear error, racing starts agree."""

from __future__ import annotations

import dataclasses
import multiprocessing
import stat
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from bot.keyfile import KEY_FILE, KeyFileError, with_stored_key
from bot.settings import Settings
from storage.crypto import TokenCipher
from tests.bot.conftest import World
from tests.bot.keyfile_race import make_key


def _unset(world: World, folder: Path) -> Settings:
    return dataclasses.replace(
        world.settings, storage_url=f"sqlite:///{folder}/g.db", token_encryption_key=""
    )


@pytest.mark.parametrize("content", ["", "\n", "not-a-key\n", "\x00\xff garbage"])
def test_an_empty_or_damaged_key_file_is_a_clear_error_and_is_kept(
    world: World, tmp_path: Path, content: str
) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(KeyFileError, match="does not hold a valid encryption key") as raised:
        with_stored_key(_unset(world, tmp_path))
    assert str(path) in str(raised.value)
    assert path.read_bytes() == content.encode("latin-1")  # nothing overwritten behind their back


def test_two_processes_creating_the_key_at_once_agree_on_one(world: World, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(5):
        folder = tmp_path / str(attempt)
        settings = _unset(world, folder)
        start: Event = ctx.Event()
        out: Queue[str] = ctx.Queue()
        procs = [ctx.Process(target=make_key, args=(settings, start, out)) for _ in range(2)]
        for p in procs:
            p.start()
        start.set()
        keys = [out.get(timeout=60), out.get(timeout=60)]
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        assert keys[0] == keys[1] != ""
        TokenCipher.from_keys(keys[0])
        path = folder / KEY_FILE
        assert path.read_text().strip() == keys[0]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [x.name for x in folder.iterdir()] == [KEY_FILE]  # no temporary file left
