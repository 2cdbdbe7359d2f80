"""Sentences that name a wall-clock time, for surfaces that show it in different zones.

The server's zone (`%Z`) is not the reader's: a host in Berlin told "calls resume at 05:12 UTC"
must do the sum. A `TimedText` is a plain `str` naming the time in the server's zone (logs, HTTP
bodies, the terminal), and remembers the epoch and the sentence around it, so a surface that
can show each reader their own zone (Discord's `<t:…>` timestamps, in the bot layer) re-renders
it with `render`. Being a `str`, it passes through every interface that carries a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def local_time(at: float, now: float | None = None) -> str:
    """The server's local time, e.g. "14:05 CET" (with the weekday when not on `now`'s day)."""
    when = time.localtime(at)
    today = time.localtime(time.time() if now is None else now)
    same_day = time.strftime("%Y-%m-%d", when) == time.strftime("%Y-%m-%d", today)
    return time.strftime("%H:%M %Z" if same_day else "%a %H:%M %Z", when)


class TimedText(str):
    """`template` with "{time}" filled in; `render` fills it in another way."""

    template: str
    at: float

    def __new__(cls, template: str, at: float, now: float | None = None) -> TimedText:
        text = super().__new__(cls, template.format(time=local_time(at, now)))
        text.template = template
        text.at = at
        return text

    def render(self, time_text: Callable[[float], str]) -> str:
        return self.template.format(time=time_text(self.at))


def render_times(text: str, time_text: Callable[[float], str]) -> str:
    """`text` with its time re-rendered when it names one; any other str as it is."""
    return text.render(time_text) if isinstance(text, TimedText) else text
