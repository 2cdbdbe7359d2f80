"""`make sandbox ARGS=--interactive`: replies read as in Discord, typos get a usage line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.sandbox.render import relative, render_text
from tests.sandbox.test_sandbox import ROOT

pytestmark = pytest.mark.sandbox

TYPED = """seek soon
wander nobody
/gamenight dance hana
/gamenight
frobnicate
/gamenight status hana
/me kim
/gamenight listen mo
quit
"""


def test_interactive_replies_render_like_discord_and_typos_get_usage() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "tests.sandbox", "--quick", "--interactive"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input=TYPED,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    tail = out.split("SANDBOX OK", 1)[1]
    assert "usage: seek SECONDS" in tail
    assert "no player called 'nobody'; players: " in tail
    assert "no command /gamenight dance; usage: /COMMAND [SUBCOMMAND] NAME" in tail
    assert "unknown command 'frobnicate' (help lists them)" in tail
    for raw in ("<@", "**", "<t:", "Error", "Traceback"):
        assert raw not in tail, (raw, tail)
    assert "Hosted by @hana" in tail  # /gamenight status: the status embed, as shown
    assert "ago" in tail  # /me: "Linked 12 seconds ago"
    assert "[🌐 Open the listen page](http://127.0.0.1:" in tail
    assert "Can't keep up" not in out + run.stderr


def test_markup_renders_as_the_discord_client_shows_it() -> None:
    text = "**Hi** <@12>, linked <t:1000:R>; see <https://x.example/a>"
    shown = render_text(text, {12: "kim"}, now=lambda: 1000 + 125)
    assert shown == "Hi @kim, linked 2 minutes ago; see https://x.example/a"
    assert relative(-7200) == "in 2 hours"
    assert render_text("<@99>", {}) == "@unknown-user"
