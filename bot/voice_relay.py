"""Where the voice player's ffmpeg reads a track's audio: our own relay, on a private port.

A YouTube stream URL plays only for the address (and User-Agent) that extracted it, and yt-dlp
extracts from YOUTUBE_SOURCE_ADDRESS or through YOUTUBE_PROXY. ffmpeg can do neither (it has
no source-address option and speaks no SOCKS), so it reads from the same relay the listen page
uses (bot/web/relay_route.py): that fetches with yt-dlp's headers, from the source address or
through the proxy, and re-extracts once when YouTube refuses a URL before its expiry.

The relay runs as its own app on 127.0.0.1 with a random port and a random signing secret:
the public HTTP server may listen on another interface, and its per-client caps would count
every voice session as one client (127.0.0.1). Only this process can sign URLs for it.
"""

from __future__ import annotations

import secrets
from contextlib import AsyncExitStack
from dataclasses import dataclass

from aiohttp import web

from bot.web.app import create_app
from bot.web.services import AudioRoute, HealthProbe, RelayConfig, StreamResolver
from bot.web.signing import RelaySigner
from bot.web.slots import StreamSlots

HOST = "127.0.0.1"
# Every voice session is this one client; a play that replaces another may briefly hold two.
MAX_STREAMS = 1024


@dataclass(frozen=True)
class VoiceRelay:
    """Signs relay URLs of the private voice relay."""

    signer: RelaySigner

    def url(self, track_id: str) -> str:
        """The URL ffmpeg reads `track_id`'s audio from (valid for the signer's TTL, hours:
        ffmpeg asks again with a Range when it reconnects or seeks)."""
        return self.signer.url(track_id)


async def start_voice_relay(
    stack: AsyncExitStack, storage: HealthProbe, resolver: StreamResolver, route: AudioRoute
) -> VoiceRelay:
    """Serve the relay on a free loopback port until `stack` closes."""
    config = RelayConfig(
        RelaySigner(secrets.token_bytes(32), f"http://{HOST}"),
        route=route,
        slots=StreamSlots(per_client=MAX_STREAMS),
    )
    runner = web.AppRunner(
        create_app(storage=storage, resolver=resolver, relay=config), access_log=None
    )
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    return VoiceRelay(config.signer.rebased(f"http://{HOST}:{port}"))
