"""Fake Discord voice: voice channels and states, the voice websocket and the UDP media endpoint.

Plugged into `tests.fakes.discord.FakeDiscord` (its `voice` attribute): the fake gateway hands
every op 4 (voice state update) to `FakeVoice.on_voice_state_update`, and the guild payload
carries the voice channels and who is in them. The REAL discord.py voice client (2.7.1, with
PyNaCl and davey) then connects here exactly as it does to Discord. Facts from
../shared/prototypes/voice_probe.py (each reproduced against discord.py 2.7.1):

- op 4 is answered with VOICE_STATE_UPDATE (the bot's gateway session id) and
  VOICE_SERVER_UPDATE {token, guild_id, endpoint "host:port"}. discord.py always dials
  `wss://{endpoint}/?v=8`, so the voice websocket is TLS (a self-signed certificate made here;
  the bot gets `client_connector()`, an aiohttp connector trusting only that certificate).
- Voice gateway v8: HELLO(8), IDENTIFY(0) -> READY(2) {ssrc, ip, port, modes} -> UDP IP
  discovery (74 bytes, big-endian port) -> SELECT_PROTOCOL(1) -> SESSION_DESCRIPTION(4) {mode,
  secret_key, dave_protocol_version (discord.py raises KeyError without it)} -> SPEAKING(5);
  HEARTBEAT(3) -> ACK(6) (30 ms late: an instant ACK makes vc.latency racy); RESUME(7) ->
  RESUMED(9). Server frames carry `seq`.
- DAVE: since 2026-03-01 Discord closes a voice connection whose IDENTIFY does not offer DAVE
  (`max_dave_protocol_version` 0 or missing) with close code 4017 (discord-api-docs PR #7803).
  This fake does that (`require_dave`, on by default). It then NEGOTIATES DAVE PROTOCOL VERSION
  0 for the media path: it does no MLS, so the audio stays transport-encrypted Opus only. That
  is a simplification: real Discord negotiates version 1 and end-to-end encrypts the frames.
- READY offers ['aead_aes256_gcm_rtpsize', 'aead_xchacha20_poly1305_rtpsize'] like Discord;
  discord.py picks xchacha20. RTP: 12-byte header (AAD) | ciphertext + tag | 4-byte BE nonce
  counter; nonce = counter + 20 zero bytes. Decoded with discord.opus.Decoder (48 kHz stereo).
- Discord does not answer an op 4 for a channel the bot may not join (no Connect, or full
  without Move Members): no event comes and the client times out. Modelled the same way.

What a test reads: `received` (every RTP packet: arrival time, seq, decoded PCM; the arrival
time is the kernel's receive timestamp, so a reader thread the GIL holds up invents no gap),
`heard(since)` (the fake YouTube's time code read back: which track and which position, per
200 ms window of received audio), `gaps(since)` and the voice-connection records.
Switches: `require_dave`, `heartbeat_ack_delay_s`, `ready_delay_s` (a slow voice server),
`decode` (False: record arrivals only, no Opus decoding, so a capacity benchmark's fake takes
little CPU from the bot), `close_voice(code)` to drop the bot's voice websocket the way a voice
server restart does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import itertools
import json
import logging
import secrets
import socket
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import discord.opus
import nacl.secret
import numpy as np
from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fakes import youtube

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord, Guild, Member

log = logging.getLogger(__name__)

JSON = dict[str, Any]
HOST = "127.0.0.1"
SR = 48_000
FRAME = 960  # samples per channel per 20 ms frame
OPUS_SILENCE = b"\xf8\xff\xfe"
MODES_OFFERED = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"]

VIEW_CHANNEL = 1 << 10
CONNECT = 1 << 20
SPEAK = 1 << 21
MOVE_MEMBERS = 1 << 24
SO_TIMESTAMPNS = 35  # Linux (asm-generic/socket.h); the socket module does not name it


@dataclass
class VoiceChannel:
    id: int
    guild_id: int
    name: str
    user_limit: int = 0
    bot_allowed: int = VIEW_CHANNEL | CONNECT | SPEAK  # the bot's member overwrite

    def payload(self, bot_id: int) -> JSON:
        return {
            "id": str(self.id),
            "type": 2,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": 1,
            "permission_overwrites": [
                {"id": str(bot_id), "type": 1, "allow": str(self.bot_allowed), "deny": "0"}
            ],
            "nsfw": False,
            "parent_id": None,
            "bitrate": 64_000,
            "user_limit": self.user_limit,
            "rtc_region": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }


@dataclass
class Packet:
    at: float  # monotonic arrival
    seq: int
    ts: int
    ssrc: int
    silence: bool
    pcm: bytes  # decoded s16le stereo, 20 ms


@dataclass
class Heard:
    """One 200 ms window of received audio, read back through the fake YouTube's code."""

    at: float  # monotonic arrival of the window's middle packet
    track_hz: float | None  # None: silence
    position_s: float | None  # media position at the window's middle
    level: float = 0.0  # RMS, full scale 1.0


@dataclass
class VoiceConnection:
    """One voice websocket the bot opened."""

    opened: float
    identify: JSON | None = None
    close_code: int | None = None
    mode: str | None = None
    ssrc: int = 0
    frames: list[JSON] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None


def _self_signed() -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 and its key, as PEM (kept in memory: no files to clean)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


class FakeVoice:
    """Voice channels, voice states and the voice server of one FakeDiscord."""

    def __init__(self, discord: FakeDiscord) -> None:
        self.discord = discord
        self.require_dave = True  # close 4017 when IDENTIFY offers no DAVE (Discord since 2026-03)
        self.heartbeat_ack_delay_s = 0.03
        self.decode = True
        self.ready_delay_s = 0.0  # before READY: a slow voice server (discord.py's player waits)
        self.channels: dict[int, VoiceChannel] = {}
        self.states: dict[tuple[int, int], int] = {}  # (guild, user) -> voice channel id
        self.connections: list[VoiceConnection] = []
        self.received: list[Packet] = []
        self.decrypt_errors = 0
        self.ignored_op4: list[JSON] = []  # op 4s Discord would not answer (no Connect, full)
        self.op4: list[JSON] = []
        self.voice_port = 0
        self.udp_port = 0
        self.ssrc = 0x1234ABCD
        self._key = secrets.token_bytes(32)
        self._token = "voice-" + secrets.token_hex(8)
        self._cert, self._certkey = _self_signed()
        self._runner: web.AppRunner | None = None
        # UDP is read by its own thread, so a packet's arrival time is when it arrived, not
        # when a busy event loop got round to it (the bot shares the test's loop).
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._decoders: dict[int, discord.opus.Decoder] = {}

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._voice_ws)  # discord.py dials wss://{endpoint}/?v=8
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # ssl loads a chain only from files: write them for the call, gone right after (a
        # TemporaryDirectory left to the garbage collector warns in whichever test is running).
        with tempfile.TemporaryDirectory(prefix="fake-voice-") as folder:
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_bytes(self._cert)
            key.write_bytes(self._certkey)
            tls.load_cert_chain(cert, key)
        site = web.TCPSite(self._runner, HOST, 0, ssl_context=tls)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert server is not None
        self.voice_port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((HOST, 0))
        self._sock.settimeout(0.2)
        with contextlib.suppress(OSError):  # arrival times from the kernel where it offers them
            self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.udp_port = self._sock.getsockname()[1]
        self._reader = threading.Thread(target=self._read_udp, name="fake-voice-udp", daemon=True)
        self._reader.start()

    async def stop(self) -> None:
        for conn in self.connections:
            if conn.ws is not None and not conn.ws.closed:
                await conn.ws.close()
        if self._sock is not None:
            sock, self._sock = self._sock, None
            if self._reader is not None:
                await asyncio.to_thread(self._reader.join, 5)
            sock.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def client_ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self._cert.decode())

    def client_connector(self) -> aiohttp.TCPConnector:
        """For `discord.Client(connector=...)`: trusts the fake voice server's certificate."""
        return aiohttp.TCPConnector(ssl=self.client_ssl_context())

    # ---------------------------------------------------------------- world

    def add_channel(
        self,
        name: str = "Game Room",
        *,
        guild: Guild | None = None,
        user_limit: int = 0,
        bot_connect: bool = True,
        bot_speak: bool = True,
    ) -> VoiceChannel:
        """A voice channel; call before the bot connects (it arrives with GUILD_CREATE)."""
        guild = guild or self.discord.default_guild
        allowed = VIEW_CHANNEL | (CONNECT if bot_connect else 0) | (SPEAK if bot_speak else 0)
        channel = VoiceChannel(self.discord.next_id(), guild.id, name, user_limit, allowed)
        self.channels[channel.id] = channel
        return channel

    def guild_channels(self, guild: Guild) -> list[JSON]:
        bot = self.discord.bot.user_id
        return [c.payload(bot) for c in self.channels.values() if c.guild_id == guild.id]

    def guild_states(self, guild: Guild) -> list[JSON]:
        return [
            self._state_payload(guild, user, channel, with_member=False)
            for (g, user), channel in self.states.items()
            if g == guild.id
        ]

    def members_in(self, channel: VoiceChannel) -> list[int]:
        return [u for (g, u), c in self.states.items() if c == channel.id]

    def bot_channel(self, guild: Guild | None = None) -> int | None:
        guild = guild or self.discord.default_guild
        return self.states.get((guild.id, self.discord.bot.user_id))

    async def move(self, member: Member, channel: VoiceChannel | None) -> None:
        """A member joins, moves to or (None) leaves a voice channel; for the bot, what a
        moderator dragging it (or disconnecting it) does."""
        guild = self.discord.guilds[channel.guild_id] if channel else self.discord.default_guild
        await self._set_state(guild, member.user_id, channel.id if channel else None)
        moved = channel is not None and member.user_id == self.discord.bot.user_id
        if moved and self.live_connections():
            # Discord moves a connected bot like this (discord-api-docs #2450, Javacord #1170):
            # the new channel's voice server, then the old voice websocket closed with 4014.
            # discord.py closes it itself on the server update and connects again.
            await self._server_update(guild)
            await self.close_voice(4014)

    async def _set_state(self, guild: Guild, user_id: int, channel_id: int | None) -> None:
        if channel_id is None:
            self.states.pop((guild.id, user_id), None)
        else:
            self.states[(guild.id, user_id)] = channel_id
        await self.discord.dispatch(
            "VOICE_STATE_UPDATE", self._state_payload(guild, user_id, channel_id)
        )
        await self.discord._notify()

    def _state_payload(
        self, guild: Guild, user_id: int, channel_id: int | None, *, with_member: bool = True
    ) -> JSON:
        bot = user_id == self.discord.bot.user_id
        payload: JSON = {
            "guild_id": str(guild.id),
            "channel_id": None if channel_id is None else str(channel_id),
            "user_id": str(user_id),
            "session_id": self.discord._session_id if bot else f"member-{user_id}",
            "deaf": False,
            "mute": False,
            "self_deaf": False,
            "self_mute": False,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }
        if with_member and user_id in guild.members:
            payload["member"] = guild.members[user_id].member()
        return payload

    # ---------------------------------------------------------------- main gateway op 4

    async def on_voice_state_update(self, data: JSON) -> None:
        """The bot's op 4 {guild_id, channel_id, self_mute, self_deaf}."""
        self.op4.append(data)
        guild = self.discord.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        if data.get("channel_id") is None:
            await self._set_state(guild, self.discord.bot.user_id, None)
            return
        channel = self.channels.get(int(data["channel_id"]))
        if channel is None or not self._may_join(channel):
            self.ignored_op4.append(data)  # Discord sends nothing back; the client times out
            return
        await self._set_state(guild, self.discord.bot.user_id, channel.id)
        await self._server_update(guild)

    async def _server_update(self, guild: Guild) -> None:
        await self.discord.dispatch(
            "VOICE_SERVER_UPDATE",
            {
                "token": self._token,
                "guild_id": str(guild.id),
                "endpoint": f"{HOST}:{self.voice_port}",
            },
        )

    def _may_join(self, channel: VoiceChannel) -> bool:
        if not channel.bot_allowed & CONNECT:
            return False
        inside = [u for u in self.members_in(channel) if u != self.discord.bot.user_id]
        full = channel.user_limit and len(inside) >= channel.user_limit
        return not full or bool(channel.bot_allowed & MOVE_MEMBERS)

    # ---------------------------------------------------------------- voice websocket

    async def close_voice(self, code: int = 4006) -> None:
        """Close the bot's live voice websocket (4006: session no longer valid)."""
        for conn in self.connections:
            if conn.ws is not None and not conn.ws.closed:
                conn.close_code = code
                # Like Discord: close and go; do not wait for the client's closing handshake.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await conn.ws.close(code=code, message=b"fake: closed")
        await self.discord._notify()

    def live_connections(self) -> list[VoiceConnection]:
        return [c for c in self.connections if c.ws is not None and not c.ws.closed]

    async def _voice_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = VoiceConnection(time.monotonic(), ws=ws)
        self.connections.append(conn)
        await self.discord._notify()
        seq = 0

        async def send(op: int, d: Any, *, with_seq: bool = True) -> None:
            nonlocal seq
            frame: JSON = {"op": op, "d": d}
            if with_seq:
                seq += 1
                frame["seq"] = seq
            await ws.send_str(json.dumps(frame))

        await send(8, {"heartbeat_interval": 13_750.0})
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:  # DAVE/MLS frames: unused at version 0
                continue
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            conn.frames.append(frame)
            op, d = frame.get("op"), frame.get("d") or {}
            if op == 0:
                conn.identify = d
                expected = (self._token, self.discord._session_id)
                if (d.get("token"), d.get("session_id")) != expected:
                    conn.close_code = 4004
                    await ws.close(code=4004, message=b"Authentication failed")
                    break
                if self.require_dave and not d.get("max_dave_protocol_version"):
                    conn.close_code = 4017
                    await ws.close(code=4017, message=b"E2EE/DAVE protocol required")
                    break
                await asyncio.sleep(self.ready_delay_s)
                conn.ssrc = self.ssrc + len(self.connections)  # one per connection
                await send(2, {"ssrc": conn.ssrc, "ip": HOST, "port": self.udp_port,
                               "modes": MODES_OFFERED})  # fmt: skip
                await self.discord._notify()  # a test may wait for the connection's ssrc
            elif op == 1:
                conn.mode = d["data"]["mode"]
                if conn.mode != "aead_xchacha20_poly1305_rtpsize":
                    conn.close_code = 4016
                    await ws.close(code=4016, message=b"Unknown encryption mode")
                    break
                await send(4, {"mode": conn.mode, "secret_key": list(self._key),
                               "dave_protocol_version": 0})  # fmt: skip
            elif op == 3:
                await asyncio.sleep(self.heartbeat_ack_delay_s)
                await send(6, {"t": d.get("t")}, with_seq=False)
            elif op == 7:
                await send(9, None)
        if conn.close_code is None:
            conn.close_code = ws.close_code
        await self.discord._notify()
        return ws

    # ---------------------------------------------------------------- UDP

    def _read_udp(self) -> None:
        sock = self._sock
        while sock is not None and self._sock is sock:
            try:
                data, ancillary, _, addr = sock.recvmsg(65536, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            except OSError:
                return
            self.on_datagram(data, addr, sock, _kernel_arrival(ancillary))

    def on_datagram(
        self, data: bytes, addr: tuple[str, int], sock: socket.socket, at: float | None = None
    ) -> None:
        now = time.monotonic() if at is None else at
        if len(data) == 74 and data[:4] == b"\x00\x01\x00\x46":  # IP discovery request
            ssrc = struct.unpack_from(">I", data, 4)[0]
            answer = bytearray(74)
            struct.pack_into(">HHI", answer, 0, 2, 70, ssrc)
            ip = str(addr[0]).encode()
            answer[8 : 8 + len(ip)] = ip
            struct.pack_into(">H", answer, 72, addr[1])  # big-endian, whatever docs say
            sock.sendto(bytes(answer), addr)
            return
        if len(data) < 12 + 16 + 4 or data[0] >> 6 != 2 or data[1] & 0x7F != 0x78:
            return
        box = nacl.secret.Aead(self._key)
        try:
            opus = box.decrypt(data[12:-4], data[:12], data[-4:] + bytes(20))
        except Exception:
            self.decrypt_errors += 1
            return
        seq, ts, ssrc = struct.unpack_from(">HII", data, 2)
        decoder = self._decoders.get(ssrc)
        if decoder is None:
            decoder = self._decoders[ssrc] = discord.opus.Decoder()
        silence = opus == OPUS_SILENCE
        pcm = decoder.decode(opus, fec=False) if self.decode else b""
        self.received.append(Packet(now, seq, ts, ssrc, silence, pcm))

    # ---------------------------------------------------------------- reading it back

    def packets(self, since: float = 0.0, ssrc: int | None = None) -> list[Packet]:
        return [p for p in self.received if p.at >= since and ssrc in (None, p.ssrc)]

    def heard(self, since: float = 0.0, window: int = 10, ssrc: int | None = None) -> list[Heard]:
        """What the channel heard after `since`, per `window` packets (10 = 200 ms)."""
        audio = [p for p in self.packets(since, ssrc) if not p.silence]
        out = []
        for i in range(0, len(audio) - window + 1, window):
            chunk = audio[i : i + window]
            pcm = np.frombuffer(b"".join(p.pcm for p in chunk), "<i2").astype(np.float64)
            mono = pcm.reshape(-1, 2).mean(axis=1) / 32768
            at = chunk[window // 2].at
            level = float(np.sqrt(np.mean(mono**2)))
            out.append(Heard(at, *_read_code(mono), level=level))
        return out

    def gaps(
        self, since: float = 0.0, over_s: float = 0.040, ssrc: int | None = None
    ) -> list[float]:
        """Inter-arrival gaps longer than `over_s` between audio packets after `since`."""
        arrivals = [p.at for p in self.packets(since, ssrc) if not p.silence]
        return [b - a for a, b in itertools.pairwise(arrivals) if b - a > over_s]


def _kernel_arrival(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's receive time (SO_TIMESTAMPNS, wall clock) on the monotonic clock."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack_from("qq", data)
            return seconds + nanoseconds / 1e9 - (time.time() - time.monotonic())
    return None


def _peak(spec: np.ndarray[Any, Any], freqs: np.ndarray[Any, Any], lo: float, hi: float) -> float:
    band = np.nonzero((freqs >= lo) & (freqs <= hi))[0]
    k = int(band[np.argmax(spec[band])])
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom else 0.0
    return float((k + shift) * (freqs[1] - freqs[0]))


def _read_code(mono: np.ndarray[Any, Any]) -> tuple[float | None, float | None]:
    """(track tone Hz, media position s) of a window, or (None, None) when silent."""
    if float(np.sqrt(np.mean(mono**2))) < 0.01:
        return None, None
    n = len(mono) * 4  # zero-padding: finer bins for the parabolic peak
    spec = np.abs(np.fft.rfft(mono * np.hanning(len(mono)), n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    lo, hi = youtube.TRACK_HZ_RANGE
    track = _peak(spec, freqs, lo - 20, hi + 20)
    code = _peak(spec, freqs, youtube.POSITION_BASE_HZ - 20, 7_500)
    position = (code - youtube.POSITION_BASE_HZ) / youtube.POSITION_HZ_PER_S
    return track, max(position, 0.0)
