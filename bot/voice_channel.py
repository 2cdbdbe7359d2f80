"""Getting the bot into a voice channel and out again, and the audio source it plays.

Checks that name what to fix (Connect, Speak, a full channel), one connection attempt with
discord.py's `reconnect=False` (its own loop retries forever on most close codes and, for
4017, returns a dead client after 25 s), and the ffmpeg source with volume and a frame count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import discord
from discord.channel import VocalGuildChannel

from core.errors import UserFacingError

log = logging.getLogger(__name__)

FFMPEG_INPUT = "-nostdin -reconnect 1 -reconnect_streamed 1 -reconnect_delay_max 2"


class VoiceRefused(UserFacingError):
    """A voice request that cannot be done; the message says why and what to do."""


class Ffmpeg(discord.FFmpegPCMAudio):
    """FFmpegPCMAudio that also closes its pipe when ffmpeg already ended by itself
    (discord.py 2.7.1 closes it only when it has to kill a running ffmpeg)."""

    def cleanup(self) -> None:
        stdout = getattr(self, "_stdout", None)
        try:
            super().cleanup()
        finally:
            if stdout is not None and hasattr(stdout, "close"):
                stdout.close()


class CountingSource(discord.PCMVolumeTransformer[discord.FFmpegPCMAudio]):
    """Volume control that also counts the frames read (a refused stream reads none)."""

    def __init__(self, original: discord.FFmpegPCMAudio, volume: float) -> None:
        super().__init__(original, volume)
        self.frames = 0

    def read(self) -> bytes:
        data = super().read()
        if data:
            self.frames += 1
        return data


def humans_in(channel: VocalGuildChannel | None) -> int:
    return 0 if channel is None else sum(1 for m in channel.members if not m.bot)


def check_can_join(channel: VocalGuildChannel) -> None:
    """Refuse, with what to fix, a channel the bot cannot play in."""
    me = channel.guild.me
    perms = channel.permissions_for(me)
    if not perms.connect or not perms.view_channel:
        raise VoiceRefused(
            f"I can't join {channel.mention}: I need the Connect permission there. "
            "Ask someone with Manage Server to allow it."
        )
    if not perms.speak:
        raise VoiceRefused(f"I can't play in {channel.mention}: I need the Speak permission there.")
    full = channel.user_limit and len(channel.members) >= channel.user_limit
    if full and not perms.move_members:
        raise VoiceRefused(
            f"{channel.mention} is full ({channel.user_limit} people). Make room or raise "
            "its user limit, then try again."
        )


async def connect(channel: VocalGuildChannel, within_s: float) -> discord.VoiceClient:
    """Connect once (no discord.py retry loop) and turn every failure into a clear refusal."""
    try:
        vc: discord.VoiceClient = await channel.connect(
            timeout=within_s, reconnect=False, self_deaf=True
        )
    except discord.ConnectionClosed as exc:
        if exc.code == 4017:
            raise VoiceRefused(
                "Discord refused the voice connection: it requires end-to-end encrypted voice "
                "(DAVE). The bot's operator must install the `davey` package."
            ) from exc
        raise VoiceRefused(
            f"Discord closed the voice connection (code {exc.code}). Try again in a moment."
        ) from exc
    except TimeoutError as exc:
        raise VoiceRefused(
            f"Discord didn't let me into {channel.mention} in time. Check that I may Connect "
            "there and that it isn't full, then try again."
        ) from exc
    except RuntimeError as exc:  # discord.py without PyNaCl / davey
        log.error("voice is not available in this installation: %s", exc)
        raise VoiceRefused(
            "Voice isn't available on this bot (its operator must install discord.py[voice] "
            "and davey)."
        ) from exc
    except discord.ClientException as exc:  # already connected in this guild
        raise VoiceRefused("I'm already connecting to voice here; try again shortly.") from exc
    if not vc.is_connected():
        with contextlib.suppress(Exception):
            await vc.disconnect(force=True)
        raise VoiceRefused("Discord dropped the voice connection at once. Try again shortly.")
    return vc


async def let_go(vc: discord.VoiceClient) -> None:
    """Disconnect (if still connected) and forget a voice client.

    With reconnect=False discord.py's websocket poller ends by raising the close
    (ConnectionClosed 4006 ...): collect it, or asyncio logs "Task exception was never
    retrieved" as an ERROR for what is a voice server's hiccup, handled here.
    """
    if vc.is_connected():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(vc.disconnect(force=True), 5)
    else:
        vc.cleanup()  # discord.py already disconnected; drop it from the client's list
    runner = getattr(vc._connection, "_runner", None)
    if isinstance(runner, asyncio.Task) and runner.done() and not runner.cancelled():
        error = runner.exception()
        if error is not None:
            log.info("guild %s: voice websocket ended: %r", vc.guild.id, error)
