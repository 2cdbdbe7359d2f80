"""What the sandbox prints: a live rich table on a terminal, plain lines anywhere else.

Both read the same rows: every person's Spotify player straight from the fake's clocks (track,
position, playing or paused, distance to the host) plus the listener's status as the bot's
stored session holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tests.sandbox.night import Figure, skew_ms
from tests.sandbox.world import Kind, Sandbox

FIGURES_TITLE = (
    "Propagation latency (host change -> the listener's player shows it) and "
    "skew (position difference at that moment)"
)


@dataclass(frozen=True)
class Row:
    name: str
    kind: str
    status: str  # the bot's view: host, attached, detached, premium_required, ...
    track: str
    position: str
    state: str
    delta: str  # distance to the host's position, when on the same track


def clock(ms: int) -> str:
    return f"{ms // 60_000}:{ms % 60_000 / 1000:04.1f}"


async def rows(box: Sandbox) -> list[Row]:
    statuses = await box.statuses()
    host = box.player(box.host)
    out = []
    for person in box.everyone:
        now = box.player(person)
        status = "host" if person.kind is Kind.HOST else statuses.get(person.name, "—")
        delta = "—"
        if person.kind is not Kind.HOST and now.track_id and now.track_id == host.track_id:
            delta = f"{skew_ms(host, now):.0f} ms"
        out.append(
            Row(
                person.name,
                str(person.kind),
                status,
                box.track_name(now.track_id),
                clock(now.position_ms) if now.track_id else "—",
                ("▶ playing" if now.is_playing else "⏸ paused") if now.track_id else "—",
                delta,
            )
        )
    return out


def player_table(found: Sequence[Row], title: str = "") -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("who", "Spotify", "bot status", "track", "position", "state", "Δ host"):
        table.add_column(column, justify="right" if column in ("position", "Δ host") else "left")
    for r in found:
        table.add_row(r.name, r.kind, r.status, r.track, r.position, r.state, r.delta)
    return table


def summary(figures: Sequence[Figure]) -> str:
    follows = [f for f in figures if f.skew_ms is not None]
    if not follows:
        return "no listener followed"
    latency = [f.latency_ms for f in follows]
    skew = [f.skew_ms for f in follows if f.skew_ms is not None]
    return (
        f"{len(follows)} follows: latency median {statistics.median(latency):.0f} ms, "
        f"max {max(latency):.0f} ms; skew median {statistics.median(skew):.0f} ms, "
        f"max {max(skew):.0f} ms"
    )


def figure_line(f: Figure) -> str:
    if f.skew_ms is None:
        return f"{f.step:<50} {f.who:<8} noticed after {f.latency_ms:>6.0f} ms"
    return f"{f.step:<50} {f.who:<8} latency {f.latency_ms:>6.0f} ms  skew {f.skew_ms:>5.0f} ms"


class Plain:
    """Plain lines (CI logs, pipes): one per step, then each player's state."""

    live = False

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def say(self, line: str = "") -> None:
        print(line, flush=True)

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._t0:6.1f}s]"

    @contextlib.asynccontextmanager
    async def running(self, box: Sandbox) -> AsyncIterator[None]:
        yield

    def step(self, index: int, total: int, title: str) -> None:
        self.say(f"{self._stamp()} step {index}/{total}: {title}")

    async def passed(self, box: Sandbox, title: str, outcome: str, seconds: float) -> None:
        self.say(f"{self._stamp()}   ok ({seconds:.1f} s): {outcome}")
        for r in await rows(box):
            self.say(
                f"           {r.name:<8} {r.status:<17} {r.state:<10} {r.track:<18} "
                f"{r.position:>7}  Δ {r.delta}"
            )

    def failed(self, title: str, error: str) -> None:
        self.say(f"{self._stamp()}   FAILED: {title}: {error}")

    def figures(self, figures: Sequence[Figure]) -> None:
        self.say()
        self.say(FIGURES_TITLE + ":")
        for f in figures:
            self.say("  " + figure_line(f))
        self.say("  " + summary(figures))


class Terminal(Plain):
    """A terminal: the player table redrawn four times a second, the step log under it."""

    live = True

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self._log: list[Text] = []
        self._current = ""

    def say(self, line: str = "") -> None:
        self.console.print(line)

    @contextlib.asynccontextmanager
    async def running(self, box: Sandbox) -> AsyncIterator[None]:
        with Live(console=self.console, refresh_per_second=8, transient=False) as live:

            async def redraw() -> None:
                while True:
                    table = player_table(await rows(box), title=self._current)
                    live.update(Group(table, *self._log[-20:]))
                    await asyncio.sleep(0.125)

            task = asyncio.create_task(redraw())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                live.update(Group(player_table(await rows(box), title="final"), *self._log))

    def step(self, index: int, total: int, title: str) -> None:
        self._current = f"step {index}/{total}: {title}"
        self._log.append(Text(f"{self._stamp()} {self._current}", style="bold"))

    async def passed(self, box: Sandbox, title: str, outcome: str, seconds: float) -> None:
        self._log.append(Text(f"           ✓ {seconds:.1f} s: {outcome}", style="green"))

    def failed(self, title: str, error: str) -> None:
        self._log.append(Text(f"           ✗ {title}: {error}", style="bold red"))

    def figures(self, figures: Sequence[Figure]) -> None:
        table = Table(title=FIGURES_TITLE, title_justify="left")
        for column in ("step", "listener", "latency", "skew"):
            table.add_column(column, justify="right" if column in ("latency", "skew") else "left")
        for f in figures:
            if f.skew_ms is None:
                table.add_row(f.step, f.who, f"noticed after {f.latency_ms:.0f} ms", "")
            else:
                table.add_row(f.step, f.who, f"{f.latency_ms:.0f} ms", f"{f.skew_ms:.0f} ms")
        self.console.print(table)
        self.console.print(summary(figures))


def reporter(plain: bool) -> Plain:
    console = Console()
    return Plain() if plain or not console.is_terminal else Terminal(console)
