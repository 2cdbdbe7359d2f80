"""`python -m tests.sandbox` as CI runs it: headless, quick settings, in its own process.

The sandbox is its own program (it installs the network guard, points discord.py at the fake,
owns its event loop), so it runs exactly as `make sandbox` starts it. Quick mode: 3 listeners
(one without Premium, one without an active device), 20 ms latency, 0.5 s polls.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sandbox.night import SCRIPT
from tests.sandbox.show import FIGURES_TITLE

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.sandbox


def sandbox(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "tests.sandbox", "--quick", *args],
        check=False,  # the exit status is what the tests check
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_the_scripted_night_completes_and_prints_its_figures() -> None:
    run = sandbox()
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "SANDBOX OK" in out
    for index, step in enumerate(SCRIPT, 1):
        assert f"step {index}/{len(SCRIPT)}: {step.title}" in out
    assert "mo flagged premium_required and told by DM" in out  # the listener without Premium

    figures = out.split(FIGURES_TITLE + ":", 1)[1].splitlines()
    measured = [line for line in figures if "latency" in line and "skew" in line]
    for words in ("join", "skips", "seeks to 1:00", "pauses", "resumes", "ends by itself"):
        # Both listeners the bot can command (Premium, and Premium without an active device).
        assert sum(words in line for line in measured) == 2, (words, figures)
    assert any("resync" in line and "kim" in line for line in measured)
    assert any("wanders off" in line and "noticed after" in line for line in figures)
    assert any(line.strip().startswith("15 follows: latency median") for line in figures)


def test_a_listener_who_never_follows_fails_the_night() -> None:
    run = sandbox("--break-follower", "--timeout", "2")
    assert run.returncode == 1, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("SANDBOX FAILED: step 3 (the listeners /gamenight join) failed")
    assert "kim shows nothing playing" in last
