"""The device path: a listener Spotify answers "no active device" for.

Spotify plays only on an active device, and a listener's device goes idle after a while (or
they closed the app). Then the listener's devices are listed (one call, at COMMAND priority:
a command waits on it) and the command is re-planned for one of them (`pick_device`: active
first, then a computer or phone, never a restricted one). The device serves that one command
only: a listener who later moves to their phone is not pulled back to it. A NO_DEVICE listener
read without a device gets the listing first, instead of a play that can only 404.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import replace

from core.spotify.quota import CallPriority
from core.sync.listener import Listener
from core.sync.planner import (
    Command,
    ListenerView,
    Mark,
    Nothing,
    Play,
    Resume,
    Seek,
    SyncConfig,
    plan_listener,
)
from core.sync.ports import PlayerClient, pick_device
from core.sync.state import PlayerState
from storage.records import ListenerStatus

log = logging.getLogger(__name__)


async def find_device(
    client: PlayerClient, uid: int, *, timeout_s: float, calls: Counter[str], guild_id: int
) -> str | None:
    """One of the listener's listed devices to play on; None when none (or the list failed)."""
    try:
        async with asyncio.timeout(timeout_s):
            calls["devices"] += 1
            return pick_device(await client.devices(uid, priority=CallPriority.COMMAND))
    except Exception as error:
        log.info("guild %s: listing devices of %s failed: %r", guild_id, uid, error)
        return None


def plan_on_device(
    view: ListenerView, device_id: str, host: PlayerState, now: float, sync: SyncConfig
) -> tuple[ListenerView, Command] | None:
    """The command re-planned for `device_id`, if one is still needed."""
    # Nothing of their player is known to be playing there: plan from an idle player.
    # (Planned as attached there: a NO_DEVICE status would distrust that idle belief.)
    view = replace(
        view,
        status=ListenerStatus.ATTACHED,
        device_id=device_id,
        belief=PlayerState.idle(now),
        observed=None,
    )
    action = plan_listener(host, view, now, sync)
    if isinstance(action, Nothing | Mark):
        return None
    return view, action


def unplaced(listener: Listener, view: ListenerView, action: Command) -> bool:
    """A command that needs an active device, for a NO_DEVICE listener read without one."""
    return (
        listener.state.status is ListenerStatus.NO_DEVICE
        and isinstance(action, Play | Resume | Seek)
        and action.device_id is None
        and (view.observed is None or view.observed.device_id is None)
    )
