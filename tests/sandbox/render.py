"""Discord messages as people see them in the client, for the sandbox's terminal.

The bot writes Discord markup: mentions `<@id>`, `**bold**`, timestamps `<t:UNIX:R>`, and
link buttons outside the text. Discord's client shows `@name`, bold text, "5 minutes ago" and
a button; the sandbox prints the same, with a button as `[label](url)`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from tests.fakes.discord import Message

MENTION = re.compile(r"<@!?(\d+)>")
TIMESTAMP = re.compile(r"<t:(-?\d+)(?::([tTdDfFR]))?>")
BOLD = re.compile(r"\*\*(.+?)\*\*", flags=re.S)
ANGLE_LINK = re.compile(r"<(https?://[^>\s]+)>")


def relative(seconds_ago: float) -> str:
    """Discord's style `R`: 'just now', '5 minutes ago', 'in 2 hours'."""
    future, span = seconds_ago < 0, abs(seconds_ago)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if span >= size:
            n = int(span // size)
            words = f"{n} {unit}{'s' if n != 1 else ''}"
            return f"in {words}" if future else f"{words} ago"
    return "just now"


def render_text(
    text: str, names: Mapping[int, str], *, now: Callable[[], float] = time.time
) -> str:
    def mention(match: re.Match[str]) -> str:
        return "@" + names.get(int(match[1]), "unknown-user")

    def stamp(match: re.Match[str]) -> str:
        at = int(match[1])
        if match[2] == "R":
            return relative(now() - at)
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))

    text = MENTION.sub(mention, text)
    text = TIMESTAMP.sub(stamp, text)
    text = BOLD.sub(r"\1", text)
    return ANGLE_LINK.sub(r"\1", text)


def render(message: Message, names: Mapping[int, str]) -> str:
    """The message's text and embeds as shown, then its link buttons."""
    shown = render_text(message.text, names)
    for row in message.data.get("components") or []:
        for comp in row.get("components") or []:
            if comp.get("type") == 2 and comp.get("url"):
                label = " ".join(
                    str(x) for x in ((comp.get("emoji") or {}).get("name"), comp.get("label")) if x
                )
                shown += f"\n[{label}]({comp['url']})"
    return shown
