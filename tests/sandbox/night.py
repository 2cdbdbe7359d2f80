"""The scripted game night: a list of steps, each an action and what must follow from it.

People act the way they would for real: the host presses skip/seek/pause in their own Spotify
app (the fake's player), everyone else types slash commands in Discord or clicks through the
Spotify consent page. Each step then waits, with a deadline, for what must follow — every
listener the bot can command shows the host's track, play state and position — and records
two figures per listener: the propagation latency (the host's change -> that listener's
player shows it) and the skew (how far apart the two positions are at that moment).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from tests.fakes.spotify_catalog import PlayerSnapshot
from tests.sandbox.world import ATTACHED, DETACHED, PREMIUM_REQUIRED, Kind, Person, Sandbox

TOLERANCE_MS = 1000  # "in sync": the bot corrects a listener further away than this
TICK_S = 0.01  # how often players are sampled while waiting for them to follow


class StepFailed(Exception):
    """A step's expectation did not hold: the sandbox exits non-zero with this message."""


@dataclass(frozen=True)
class Figure:
    step: str
    who: str
    latency_ms: float  # the host's change (or the command) -> their player shows it
    skew_ms: float | None  # |their position - the host's| at that moment


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[Night], Awaitable[str]]  # does the step, checks it; a one-line outcome


def skew_ms(host: PlayerSnapshot, other: PlayerSnapshot) -> float:
    """Position difference, with the host's position carried to the instant `other` was read."""
    carried = (other.at - host.at) * 1000 if host.is_playing else 0.0
    return abs(other.position_ms - (host.position_ms + carried))


def in_sync(host: PlayerSnapshot, other: PlayerSnapshot) -> bool:
    if other.track_id != host.track_id or other.is_playing != host.is_playing:
        return False
    return not host.is_playing or skew_ms(host, other) <= TOLERANCE_MS


def shows(box: Sandbox, person: Person) -> str:
    now = box.player(person)
    if now.track_id is None:
        return "nothing playing"
    state = "playing" if now.is_playing else "paused"
    return f"{state} “{box.track_name(now.track_id)}” at {now.position_ms / 1000:.1f} s"


@dataclass
class Night:
    box: Sandbox
    figures: list[Figure] = field(default_factory=list)
    step: str = ""
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    # --- expectations ----------------------------------------------------------------------

    async def followed(
        self, since: float | dict[str, float], who: Iterable[Person] | None = None
    ) -> str:
        """Wait until each listener shows the host's state; record latency and skew."""
        box = self.box
        pending = {p.name: p for p in (box.followers if who is None else who)}
        start = dict.fromkeys(pending, since) if isinstance(since, float) else since
        deadline = time.monotonic() + box.options.follow_timeout_s
        done: list[str] = []
        while pending:
            host = box.player(box.host)
            for name, person in list(pending.items()):
                mine = box.player(person)
                if in_sync(host, mine):
                    # The player stamps its last change: exact, unlike the sampling tick.
                    changed = box.spotify.player(person.account).changed_at
                    shown = changed if start[name] <= changed <= mine.at else mine.at
                    figure = Figure(
                        self.step, name, (shown - start[name]) * 1000, skew_ms(host, mine)
                    )
                    self.figures.append(figure)
                    done.append(f"{name} {figure.latency_ms:.0f} ms")
                    del pending[name]
            if pending and time.monotonic() > deadline:
                lagging = "; ".join(f"{n} shows {shows(box, p)}" for n, p in pending.items())
                raise StepFailed(
                    f"not followed within {box.options.follow_timeout_s:.1f} s — host shows "
                    f"{shows(box, box.host)}; {lagging}"
                )
            await asyncio.sleep(TICK_S)
        return "followed: " + ", ".join(done) if done else "nobody to follow"

    async def status_becomes(self, person: Person, status: str, within: float) -> float:
        """Wait until the bot's session holds `status` for `person`; when it did."""
        deadline = time.monotonic() + within
        while (await self.box.statuses()).get(person.name) != status:
            if time.monotonic() > deadline:
                seen = (await self.box.statuses()).get(person.name, "not in the session")
                raise StepFailed(f"{person.name} is {seen!r} after {within:.1f} s, not {status!r}")
            await asyncio.sleep(0.05)
        return time.time()

    async def answer(self, command: str, person: Person, expected: str, **options: object) -> str:
        text = await self.box.say(command, person, **options)
        if expected not in text:
            raise StepFailed(f"/{command} by {person.name} answered {text!r}")
        return text

    def commands_to(self, person: Person, since_monotonic: float) -> int:
        """Player commands the bot sent to `person`'s Spotify since then."""
        return sum(
            1
            for r in self.box.spotify.requests("/v1/me/player/", account=person.account)
            if r.method == "PUT" and r.received_at >= since_monotonic
        )

    # --- the steps -------------------------------------------------------------------------

    async def link_everyone(self) -> str:
        for person in self.box.everyone:
            status, page = await self.box.link(person)
            if status != 200 or "Spotify linked" not in page:
                raise StepFailed(f"{person.name}'s callback page answered {status}: {page[:200]}")
        return f"{len(self.box.everyone)} accounts linked"

    async def start(self) -> str:
        box = self.box
        box.spotify.player(box.host.account).load(box.queue, position_ms=20_000)
        await self.answer("gamenight start", box.host, "you're the host")
        if await box.session() is None:
            raise StepFailed("no session stored after /gamenight start")
        return f"host plays “{box.track_name(box.queue[0])}”"

    async def join(self) -> str:
        box = self.box
        joined: dict[str, float] = {}
        for person in box.listeners:
            joined[person.name] = time.time()
            await self.answer("gamenight join", person, "You're in")
        outcome = await self.followed(joined)
        for person in box.listeners:
            if person.kind is Kind.FREE:
                await self.status_becomes(person, PREMIUM_REQUIRED, box.options.follow_timeout_s)
                await self.wait_for(self.told_about_premium(person))
                outcome += f"; {person.name} flagged {PREMIUM_REQUIRED} and told by DM"
        return outcome

    async def skip(self) -> str:
        return await self.host_does(lambda player: player.next())

    async def seek(self) -> str:
        return await self.host_does(lambda player: player.seek(60_000))

    async def pause(self) -> str:
        return await self.host_does(lambda player: player.pause())

    async def resume(self) -> str:
        return await self.host_does(lambda player: player.resume())

    async def seek_near_end(self) -> str:
        box = self.box
        track = box.player(box.host).track_id
        assert track is not None
        return await self.host_does(lambda player: player.seek(box.duration_ms(track) - 4_000))

    async def track_ends(self) -> str:
        box = self.box
        before = box.player(box.host).track_id
        await self.wait_for(lambda: box.player(box.host).track_id != before, within=10)
        ended_at = box.spotify.player(box.host.account).changed_at  # when the track ran out
        return await self.followed(ended_at)

    async def wander_off(self) -> str:
        box = self.box
        wanderer = self.wanderer
        since, mono = time.time(), time.monotonic()
        box.spotify.player(wanderer.account).load([box.spotify.catalog[-1].id])
        noticed = await self.status_becomes(wanderer, DETACHED, box.options.notice_timeout_s)
        if (sent := self.commands_to(wanderer, mono)) or box.player(wanderer).track_id != (
            box.spotify.catalog[-1].id
        ):
            raise StepFailed(f"the bot fought {wanderer.name}: {sent} command(s) since")
        others = [p for p in box.followers if p is not wanderer]
        host = box.player(box.host)
        if lost := [p.name for p in others if not in_sync(host, box.player(p))]:
            raise StepFailed(f"{', '.join(lost)} lost the host meanwhile")
        self.figures.append(Figure(self.step, wanderer.name, (noticed - since) * 1000, None))
        return f"{wanderer.name} marked {DETACHED} after {noticed - since:.1f} s, left alone"

    async def resync(self) -> str:
        since = time.time()
        await self.answer("gamenight resync", self.wanderer, "Re-syncing you")
        outcome = await self.followed(since, [self.wanderer])
        await self.status_becomes(self.wanderer, ATTACHED, self.box.options.follow_timeout_s)
        return outcome

    async def stream_lookup(self) -> str:
        box = self.box
        track = box.player(box.host).track_id
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{box.http_base}/v1/tracks/{track}") as response:
                found = await response.json(content_type=None)
                if response.status != 200:
                    raise StepFailed(f"GET /v1/tracks/{track} answered {response.status}: {found}")
            # Through the bot's relay, as a browser would: YouTube's own URL is bound to the
            # bot's address and refused elsewhere (the fake models it).
            async with http.get(f"{box.http_base}/v1/tracks/{track}/stream") as audio:
                body = await audio.read()
                if audio.status != 200 or not body.startswith(b"RIFF"):
                    raise StepFailed(f"the relayed stream answered {audio.status}")
        return f"“{found['match']['title']}” -> {len(body)} bytes of audio through the relay"

    async def listen_along(self) -> str:
        box = self.box
        free = next((p for p in box.listeners if p.kind is Kind.FREE), box.host)
        text = await self.answer("gamenight listen", free, "Listen along in your browser")
        url = next(w.strip("()[]") for w in text.replace("](", " ").split() if box.http_base in w)
        async with aiohttp.ClientSession() as http, http.get(url) as page:
            if page.status != 200:
                raise StepFailed(f"the listen-along page answered {page.status}")
        return f"{free.name} got {url.removeprefix(box.http_base)} (200)"

    async def stop(self) -> str:
        box = self.box
        await self.answer("gamenight stop", box.host, "Game night ended")
        if await box.session() is not None:
            raise StepFailed("the session is still stored after /gamenight stop")
        return "session ended"

    # --- helpers ---------------------------------------------------------------------------

    @property
    def wanderer(self) -> Person:
        return next(p for p in self.box.followers if p.kind is Kind.PREMIUM)

    async def host_does(self, change: Callable[..., object]) -> str:
        # At a random moment of the bot's poll cycle, as a person would: changing right after
        # the previous step settled would always measure the worst case (a full interval).
        await asyncio.sleep(self.rng.uniform(0, self.box.options.poll_interval_s))
        since = time.time()
        change(self.box.spotify.player(self.box.host.account))
        return await self.followed(since)

    def told_about_premium(self, person: Person) -> Callable[[], bool]:
        return lambda: any("Premium" in m.text for m in self.box.dms(person))

    async def wait_for(self, check: Callable[[], bool], within: float | None = None) -> None:
        limit = self.box.options.follow_timeout_s if within is None else within
        deadline = time.monotonic() + limit
        while not check():
            if time.monotonic() > deadline:
                raise StepFailed(f"gave up waiting after {limit:.1f} s")
            await asyncio.sleep(0.02)


SCRIPT: tuple[Step, ...] = (
    Step("everyone links Spotify: /link -> consent page -> callback", Night.link_everyone),
    Step("the host starts playing and /gamenight start", Night.start),
    Step("the listeners /gamenight join", Night.join),
    Step("the host skips to the next track", Night.skip),
    Step("the host seeks to 1:00", Night.seek),
    Step("the host pauses", Night.pause),
    Step("the host resumes", Night.resume),
    Step("the host seeks to 4 s before the end", Night.seek_near_end),
    Step("the track ends by itself, the next one starts", Night.track_ends),
    Step("a listener plays something else (wanders off)", Night.wander_off),
    Step("they /gamenight resync", Night.resync),
    Step("the PWA looks up the stream of the host's track", Night.stream_lookup),
    Step("the listener without Premium gets the listen-along page", Night.listen_along),
    Step("the host /gamenight stop", Night.stop),
)
