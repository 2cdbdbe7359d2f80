"""core.stopping: a stop that outlasts a lost cancel, and gives up on a task that never ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from core.stopping import stop_task


async def test_a_task_that_lost_its_first_cancel_is_stopped_by_the_next() -> None:
    # What Python 3.11's wait_for does to a cancel landing with its result: it is dropped.
    rounds = 0

    async def loses_one_cancel() -> None:
        nonlocal rounds
        with contextlib.suppress(asyncio.CancelledError):  # lost
            await asyncio.sleep(10)
        while True:
            rounds += 1
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loses_one_cancel())
    await asyncio.sleep(0)
    assert await stop_task(task, within=5)
    assert task.cancelled() and rounds > 0


async def test_a_task_that_never_ends_is_left_behind_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, "core.stopping"):
        assert not await stop_task(task, within=0.3)
    assert "stubborn" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait([task], timeout=1)
    assert task.done()


async def test_a_failed_task_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails(), name="fails")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, "core.stopping"):
        assert await stop_task(task)
    assert "boom" in caplog.text
