"""`--interactive`: keep the sandbox up after the script, show its URLs, take commands on stdin.

A person can open a fresh /link URL in a browser and click through the fake Spotify consent
page to the bot's real callback page, look at the bot's HTTP API, and play host or listener
by typing commands (`help` lists them). Ctrl-D, Ctrl-C or `quit` ends it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from tests.sandbox.show import Plain, rows
from tests.sandbox.world import Kind, Person, Sandbox

HELP = """commands:
  status                     every player and the bot's view of each listener
  skip | pause | resume      the host's Spotify app does that
  seek SECONDS               the host seeks
  wander NAME                NAME plays something else on their own
  /COMMAND NAME              NAME types a slash command, e.g. `/gamenight resync kim`,
                             `/gamenight start hana`, `/gamenight join guest`, `/me kim`
  link                       a fresh /link URL for `guest` (open it in a browser)
  quit"""


async def serve(box: Sandbox, show: Plain) -> None:
    guest = next((p for p in box.listeners if p.name == "guest"), None)
    if guest is None:
        guest = Sandbox._person(box.discord, box.spotify, "guest", Kind.PREMIUM)
        box.listeners.append(guest)
    show.say("")
    show.say("The sandbox keeps running. Open these in a browser on this machine:")
    show.say(f"  bot HTTP server      {box.http_base}/healthcheck   (API: docs/HTTP_API.md)")
    show.say(f"  a track's stream     {box.http_base}/v1/tracks/{box.queue[0]}")
    show.say(f"  fake Spotify         {box.spotify.base}  (consent page: /authorize)")
    show.say(f"  fake YouTube         {box.youtube.base_url}")
    show.say(f"  fake Discord API     {box.discord.api_base}")
    show.say(f"  /link as guest       {await box.link_url(guest)}")
    show.say("    (pick an account, Agree: you land on the bot's callback page)")
    show.say(HELP)
    lines = stdin_lines()
    while True:
        line = await lines.get()
        if line is None:
            return
        try:
            if not await run(box, show, guest, line.strip()):
                return
        except Exception as error:  # a bug of the sandbox's must not end the evening either
            show.say(f"  the sandbox could not do that ({type(error).__name__}: {error})")


def stdin_lines() -> asyncio.Queue[str | None]:
    """Lines from stdin without blocking the loop (None at end of input)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
        queue.put_nowait(line or None)

    loop.add_reader(sys.stdin.fileno(), readable)
    return queue


USAGE = {
    "seek": "seek SECONDS (e.g. seek 90)",
    "wander": "wander NAME",
    "/": "/COMMAND [SUBCOMMAND] NAME, e.g. /gamenight resync kim",
}


class Typo(Exception):
    """A line the sandbox cannot carry out; the message is the usage line to show."""


def person(people: dict[str, Person], name: str) -> Person:
    if name not in people:
        raise Typo(f"no player called {name!r}; players: {', '.join(sorted(people))}")
    return people[name]


async def run(box: Sandbox, show: Plain, guest: Person, line: str) -> bool:
    """Carry out one command; False ends the session. A typo gets a usage line."""
    try:
        return await _run(box, show, guest, line)
    except Typo as typo:
        show.say(f"  {typo}")
    return True


async def _run(box: Sandbox, show: Plain, guest: Person, line: str) -> bool:
    words = line.split()
    if not words:
        return True
    people = {p.name: p for p in box.everyone}
    host = box.spotify.player(box.host.account)
    simple: dict[str, Callable[[], object]] = {
        "skip": host.next,
        "pause": host.pause,
        "resume": host.resume,
    }
    match words:
        case ["quit" | "exit"]:
            return False
        case ["help"]:
            show.say(HELP)
        case ["status"]:
            for r in await rows(box):
                show.say(f"  {r.name:<8} {r.status:<17} {r.state:<10} {r.track:<18} {r.position}")
        case [word] if word in simple:
            simple[word]()
        case ["seek", seconds] if _number(seconds) is not None:
            host.seek(int(float(seconds) * 1000))
        case ["seek", *_]:
            raise Typo(f"usage: {USAGE['seek']}")
        case ["wander", name]:
            box.spotify.player(person(people, name).account).load([box.spotify.catalog[-1].id])
        case ["wander", *_]:
            raise Typo(f"usage: {USAGE['wander']}")
        case ["link"]:
            show.say(f"  {await box.link_url(guest)}")
        case [command, *rest] if command.startswith("/") and rest:
            *path, name = rest
            who = person(people, name)
            typed = " ".join([command[1:], *path])
            known = command_paths(box)
            if typed not in known:
                listed = ", ".join("/" + c for c in sorted(known))
                raise Typo(f"no command /{typed}; usage: {USAGE['/']}\n  commands: {listed}")
            try:
                reply: Awaitable[str] = box.say(typed, who)
                answer = await reply
            except (AssertionError, PermissionError) as refused:  # what Discord's client refuses
                raise Typo(f"Discord would not send that: {refused}") from None
            show.say("  bot: " + answer.replace("\n", "\n       "))
        case [command] if command.startswith("/"):
            raise Typo(f"usage: {USAGE['/']}")
        case _:
            raise Typo(f"unknown command {words[0]!r} (help lists them)")
    return True


def command_paths(box: Sandbox) -> set[str]:
    """Every slash command the bot registered, as typed: `me`, `gamenight join`, ..."""
    paths = set()
    for name, schema in box.discord.commands_for(box.discord.default_guild).items():
        subs = [o["name"] for o in schema.get("options") or [] if o.get("type") == 1]
        if subs:
            paths.update(f"{name} {sub}" for sub in subs)
        else:
            paths.add(name)
    return paths


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None
